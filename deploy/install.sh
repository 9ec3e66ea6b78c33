#!/usr/bin/env bash
# Installs a built pacsgw as a systemd service on Debian 12:
#   user and group pacsgw, /usr/local/bin/pacsgw, /etc/pacsgw/pacsgw.yaml (kept if present),
#   /var/lib/pacsgw (0700) with a new master key (kept if present), the unit pacsgw.service.
# It does not start the service: edit the configuration first (docs/operator-guide.md).
#
#   sudo deploy/install.sh [path/to/pacsgw]     # default: build/pacsgw
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$repo/build/pacsgw}
config=/etc/pacsgw/pacsgw.yaml

[[ $(id -u) -eq 0 ]] || { echo "install.sh: run as root" >&2; exit 1; }
[[ -x $bin ]] || { echo "install.sh: $bin not found; build first (scripts/setup.sh)" >&2; exit 1; }

if ! getent passwd pacsgw >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/pacsgw --no-create-home --shell /usr/sbin/nologin pacsgw
fi
install -m 0755 "$bin" /usr/local/bin/pacsgw
install -d -m 0750 -o root -g pacsgw /etc/pacsgw
if [[ ! -f $config ]]; then
  install -m 0640 -o root -g pacsgw "$repo/deploy/pacsgw.yaml" "$config"
  echo "installed $config: edit it (upstream PACS, modalities, workstations) before starting"
fi
install -d -m 0700 -o pacsgw -g pacsgw /var/lib/pacsgw
# The master key is created by the service user so that it owns the 0600 file.
runuser -u pacsgw -- /usr/local/bin/pacsgw keys init-master --config "$config"
# DCMTK data dictionary naming the key-reference elements (DCMDICTPATH, docs/operator-guide.md section 5).
install -D -m 0644 "$repo/dicom/pacsgw.dic" /usr/local/share/pacsgw/pacsgw.dic
install -d -m 0755 /usr/local/share/doc/pacsgw
for doc in "$repo"/docs/*.md; do install -m 0644 "$doc" /usr/local/share/doc/pacsgw/; done
install -m 0644 "$repo/deploy/pacsgw.service" /etc/systemd/system/pacsgw.service
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
fi
cat <<MSG
pacsgw installed. Next:
  1. back up /var/lib/pacsgw/master.key (docs/operator-guide.md, "Master key custody")
  2. edit $config, then: pacsgw config check --config $config
  3. systemctl enable --now pacsgw && journalctl -u pacsgw -f
MSG
