#!/usr/bin/env bash
# Quick start on one machine: install and build (scripts/setup.sh), start a local Orthanc as the PACS
# (AE ORTHANC, DICOM 4242, HTTP 8042 on loopback), then run `pacsgw serve` on its embedded defaults
# in the foreground (AE GATEWAY on 127.0.0.1:11112). Ctrl-C stops the gateway, then Orthanc.
#
#   sudo ./scripts/quickstart.sh
#
# Environment: PACSGW_DATA_DIR (default /var/lib/pacsgw as root, ~/.local/share/pacsgw otherwise).
# Orthanc's database lives in $PACSGW_DATA_DIR/orthanc, so the PACS keeps its studies across runs.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${PACSGW_BUILD_DIR:-$repo/build}
if [[ $(id -u) -eq 0 ]]; then
  data_dir=${PACSGW_DATA_DIR:-/var/lib/pacsgw}
else
  data_dir=${PACSGW_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/pacsgw}
fi
export PACSGW_DATA_DIR=$data_dir
# These are the embedded defaults of `pacsgw serve` (see `pacsgw config defaults`).
gateway_port=11112 pacs_aet=ORTHANC pacs_port=4242 http_port=8042
orthanc_dir=$data_dir/orthanc

say() { printf '[quickstart] %s\n' "$*"; }
die() { printf '[quickstart] ERROR: %s\n' "$*" >&2; exit 1; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

"$repo/scripts/setup.sh"
# A real CT to send; not fatal if the network is unavailable.
"$repo/scripts/fetch-test-data.sh" || say "test data not fetched; send your own DICOM files"

# Debian's orthanc package starts a system service on the same ports where systemd runs.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet orthanc 2>/dev/null; then
  say "stopping the Debian orthanc service (it uses ports $pacs_port/$http_port; 'systemctl start orthanc' restores it)"
  systemctl stop orthanc
fi
for port in $pacs_port $http_port $gateway_port; do
  port_busy "$port" && die "port $port on 127.0.0.1 is already in use (another PACS or gateway running?)"
done

mkdir -p "$orthanc_dir/db"
chmod 0700 "$data_dir"
# Only the gateway may store into this PACS (AE GATEWAY from 127.0.0.1); modalities go through the
# gateway. HTTP answers on loopback only. Orthanc 1.10 cannot bind DICOM to one address, so the
# modality list is what keeps other hosts out.
cat >"$orthanc_dir/orthanc.json" <<EOF
{
  "Name": "pacsgw-quickstart-pacs",
  "StorageDirectory": "$orthanc_dir/db",
  "IndexDirectory": "$orthanc_dir/db",
  "Plugins": [],
  "HttpServerEnabled": true, "HttpPort": $http_port, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
  "DicomServerEnabled": true, "DicomAet": "$pacs_aet", "DicomPort": $pacs_port, "DicomCheckCalledAet": true,
  "AcceptedTransferSyntaxes": ["1.2.840.10008.1.*"],
  "DicomAlwaysAllowEcho": true, "DicomAlwaysAllowStore": false, "DicomAlwaysAllowFind": false,
  "DicomAlwaysAllowMove": false, "DicomCheckModalityHost": true,
  "DicomModalities": {
    "gateway": { "AET": "GATEWAY", "Host": "127.0.0.1", "Port": $gateway_port,
                 "AllowEcho": true, "AllowFind": true, "AllowMove": true, "AllowGet": true, "AllowStore": true }
  },
  "SynchronousCMove": true, "OverwriteInstances": true, "SaveJobs": false
}
EOF

orthanc_bin=$(command -v Orthanc || echo /usr/sbin/Orthanc)
export TCP_NODELAY=1  # DCMTK-based peers: Nagle costs ~40 ms per DIMSE message on loopback
say "starting Orthanc (log: $orthanc_dir/orthanc.log)"
"$orthanc_bin" "$orthanc_dir/orthanc.json" >>"$orthanc_dir/orthanc.log" 2>&1 &
orthanc_pid=$!
gateway_pid=
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  trap - EXIT INT TERM
  if [[ -n $gateway_pid ]] && kill -0 "$gateway_pid" 2>/dev/null; then
    kill -TERM "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
  fi
  if kill -0 "$orthanc_pid" 2>/dev/null; then
    say "stopping Orthanc"
    kill -TERM "$orthanc_pid" 2>/dev/null || true
    wait "$orthanc_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$http_port/system" >/dev/null 2>&1 && break
  kill -0 "$orthanc_pid" 2>/dev/null || { tail -n 30 "$orthanc_dir/orthanc.log" >&2; die "Orthanc exited"; }
  sleep 0.2
done
curl -sf "http://127.0.0.1:$http_port/system" >/dev/null || die "Orthanc did not answer on port $http_port"

# The same defaults as a file, for the CLI (decrypt, keys list) while the gateway runs.
config_file=$data_dir/pacsgw.yaml
[[ -f $config_file ]] || "$build_dir/pacsgw" config defaults --data-dir "$data_dir" >"$config_file"

sample=$repo/tests/data/cache/ct_le.dcm
[[ -f $sample ]] || sample=FILE.dcm
dicts=(/usr/share/libdcmtk*/dicom.dic)
dcmdict=${dicts[-1]}:${dicts[-1]%/dicom.dic}/private.dic:$repo/dicom/pacsgw.dic

# Sends the sample CT through the gateway, fetches the PACS copy, restores it and writes the
# picture $data_dir/quickstart/side-by-side.png. Best effort: the gateway keeps running either way.
show_picture() {
  local dir=$data_dir/quickstart uid id
  [[ -f $sample ]] || return 0
  mkdir -p "$dir"
  for _ in $(seq 1 50); do
    echoscu -aec GATEWAY -aet CT1 127.0.0.1 "$gateway_port" >/dev/null 2>&1 && break
    sleep 0.2
  done
  storescu -aec GATEWAY -aet CT1 127.0.0.1 "$gateway_port" "$sample" >"$dir/storescu.log" 2>&1 || true
  uid=$(dcmdump -q +P 0008,0018 "$sample" | sed -n 's/.*\[\(.*\)\].*/\1/p')
  id=$(curl -sf -X POST "http://127.0.0.1:$http_port/tools/lookup" -d "$uid" |
       python3 -c 'import json,sys; print(next((r["ID"] for r in json.load(sys.stdin) if r["Type"] == "Instance"), ""))')
  [[ -n $id ]] || { say "the sample did not reach the PACS (see $dir/storescu.log)"; return 0; }
  curl -sf "http://127.0.0.1:$http_port/instances/$id/file" -o "$dir/pacs-copy.dcm" &&
    "$build_dir/pacsgw" decrypt --config "$config_file" "$dir/pacs-copy.dcm" "$dir/restored.dcm" >/dev/null &&
    "$repo/scripts/side-by-side-png.sh" "$dir/pacs-copy.dcm" "$dir/restored.dcm" "$dir/side-by-side.png" >/dev/null &&
    say "sample CT sent through the gateway: $dir/side-by-side.png shows the PACS copy (left) and the restored image (right)"
}
cat <<EOF

========================================================================================
 pacsgw quick start: gateway GATEWAY@127.0.0.1:$gateway_port  ->  PACS $pacs_aet@127.0.0.1:$pacs_port
 data dir: $data_dir   (master key: $data_dir/master.key -- back it up)

 Send a study (uncompressed files; CT1 and STORESCU are the allowed modality AE titles):
   TCP_NODELAY=1 storescu -aec GATEWAY -aet CT1 127.0.0.1 $gateway_port $sample
 Compressed files, sent as they are (storescu would stop at a JPEG-LS file):
   TCP_NODELAY=1 dcmsend --decompress-never -aec GATEWAY -aet CT1 127.0.0.1 $gateway_port FILE...

 Look at the PACS copy (Orthanc REST, loopback only):
   curl -s http://127.0.0.1:$http_port/instances
   curl -s http://127.0.0.1:$http_port/instances/ID/file -o pacs-copy.dcm
   DCMDICTPATH=$dcmdict dcmdump pacs-copy.dcm | grep -i '(0077,'   # the key-reference block
 Restore the original pixels, and see both side by side:
   $build_dir/pacsgw decrypt --config $config_file pacs-copy.dcm restored.dcm
   $repo/scripts/side-by-side-png.sh pacs-copy.dcm restored.dcm side-by-side.png

 Stop with Ctrl-C (the gateway, then Orthanc).
========================================================================================

EOF

# The gateway runs in the background only so that INT/TERM reach it through the trap above;
# its log goes to this terminal.
"$build_dir/pacsgw" serve &
gateway_pid=$!
show_picture
status=0
wait "$gateway_pid" || status=$?
gateway_pid=
say "pacsgw exited with status $status"
exit "$status"
