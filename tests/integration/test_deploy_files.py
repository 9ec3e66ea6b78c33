#!/usr/bin/env python3
"""The deployment files are checked by real tools, not by eye:

* deploy/kubernetes/: every object validated against the Kubernetes API JSON schemas (npm
  kubernetes-models, installed by scripts/fetch-test-data.sh) and, for unknown or misspelt fields,
  against the API models of Debian's python3-kubernetes; the ConfigMap's configuration is accepted
  by `pacsgw config check` with test-made TLS files laid out (names, mode, group) as the kubelet
  mounts the TLS Secrets; probes and Services point at ports the gateway really listens on.
* deploy/pacsgw.service: `systemd-analyze verify` with no finding.
* deploy/grafana/: every query parses as PromQL (`promtool check rules`) and names only metrics
  the gateway exports.
* docker/: the shipped container configuration passes `pacsgw config check` without a warning and
  grants decrypt to nobody; the compose file fixes no address and its services, the gateway's
  upstream and Orthanc's modality entry name each other consistently; the image built from a host
  executable (prebuilt.Dockerfile) runs exactly like the Dockerfile's runtime stage.

A deliberately broken copy of each input is fed to the same checks, so they are known to fail.

Run alone:  PACSGW_BIN=build/pacsgw python3 tests/integration/test_deploy_files.py -v
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pacsgw_harness as h  # noqa: E402

import yaml  # noqa: E402  (python3-yaml)

REPO = h.REPO_ROOT
K8S = REPO / "deploy" / "kubernetes"
SCHEMA_CHECK = Path(__file__).resolve().parent / "k8s_schema" / "validate.js"


def schema_tools() -> Path:
    path = h.cache_dir() / "tools" / "k8s_schema" / "node_modules"
    if not (path / "kubernetes-models").is_dir():
        raise FileNotFoundError(f"{path} is missing: run scripts/fetch-test-data.sh first")
    return path


def manifests() -> list:
    """[(file name, object)] for every Kubernetes object in deploy/kubernetes/ (not kustomization)."""
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                objects.append((path.name, doc))
    return objects


def schema_check(objects) -> subprocess.CompletedProcess:
    payload = json.dumps([{"source": source, "object": obj} for source, obj in objects])
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise FileNotFoundError("node not found (Debian package nodejs; scripts/setup.sh installs it)")
    env = dict(os.environ, NODE_PATH=str(schema_tools()))
    return subprocess.run([node, str(SCHEMA_CHECK)], input=payload, capture_output=True, text=True, env=env,
                          timeout=120)


# --- unknown-field check with the API models of python3-kubernetes ---------------------------

def unknown_fields(obj) -> list:
    """Paths of fields the Kubernetes API does not define for this object's kind."""
    import kubernetes.client as k8s  # python3-kubernetes
    group_version = obj["apiVersion"].split("/")
    version = group_version[-1]
    model = getattr(k8s, f"{version.capitalize()}{obj['kind']}", None)
    if model is None:
        return [f"{obj['apiVersion']} {obj['kind']}: no API model"]
    problems = []

    def walk(value, type_name, path):
        if type_name.startswith("list["):
            for i, item in enumerate(value if isinstance(value, list) else []):
                walk(item, type_name[5:-1], f"{path}[{i}]")
            return
        if type_name.startswith("dict(") or type_name in ("object", "str", "int", "bool", "float", "datetime"):
            return
        cls = getattr(k8s, type_name, None)
        if cls is None or not isinstance(value, dict):
            return
        by_json_name = {json_name: attr for attr, json_name in cls.attribute_map.items()}
        for key, item in value.items():
            if key not in by_json_name:
                problems.append(f"{path}.{key}" if path else key)
            else:
                walk(item, cls.openapi_types[by_json_name[key]], f"{path}.{key}" if path else key)

    walk(obj, model.__name__, "")
    return problems


class KubernetesManifests(unittest.TestCase):
    def test_every_object_matches_the_api_schema(self):
        objects = manifests()
        kinds = sorted({obj["kind"] for _, obj in objects})
        self.assertEqual(kinds, ["ConfigMap", "Secret", "Service", "StatefulSet"])
        result = schema_check(objects)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stdout.count(": valid\n"), len(objects), result.stdout)

    def test_the_schema_check_catches_wrong_types_and_missing_fields(self):
        objects = dict((obj["kind"], (source, obj)) for source, obj in manifests())
        source, statefulset = copy.deepcopy(objects["StatefulSet"])
        statefulset["spec"]["replicas"] = "one"
        del statefulset["spec"]["selector"]
        result = schema_check([(source, statefulset)])
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("replicas must be integer", result.stdout)
        self.assertIn("data/spec must have required property selector", result.stdout)

    def test_no_field_is_unknown_to_the_api(self):
        for source, obj in manifests():
            self.assertEqual(unknown_fields(obj), [], f"{source}: {obj['kind']}")
        _, statefulset = next((s, copy.deepcopy(o)) for s, o in manifests() if o["kind"] == "StatefulSet")
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        container["imagee"] = container.pop("image")
        container["readinessProbe"]["httpGet"]["pathh"] = "/health/ready"
        self.assertEqual(sorted(unknown_fields(statefulset)),
                         ["spec.template.spec.containers[0].imagee",
                          "spec.template.spec.containers[0].readinessProbe.httpGet.pathh"])

    def test_kustomization_lists_every_manifest_but_the_example_secret(self):
        kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
        files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.yaml"}
        self.assertEqual(sorted(kustomization["resources"]), sorted(files))

    def objects_by_kind(self) -> dict:
        found = {}
        for _, obj in manifests():
            found.setdefault(obj["kind"], []).append(obj)
        return found

    def secret_volume(self) -> tuple:
        """(mount path, default mode, {file name: (secret, key)}) of the StatefulSet's TLS volume."""
        statefulset = self.objects_by_kind()["StatefulSet"][0]
        pod = statefulset["spec"]["template"]["spec"]
        container = pod["containers"][0]
        volume = next(v for v in pod["volumes"] if v["name"] == "tls")
        mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
        files = {}
        for source in volume["projected"]["sources"]:
            for item in source["secret"]["items"]:
                files[item["path"]] = (source["secret"]["name"], item["key"])
        return mount["mountPath"], volume["projected"]["defaultMode"], files

    def materialise_secret_volume(self, directory: Path, default_mode: int, files: dict) -> dict:
        """The TLS volume as the kubelet writes it: test-made certificates under the Secret file names,
        with the kubelet's mode for a Secret volume of a pod with fsGroup (defaultMode plus group read,
        group = fsGroup = the gateway's own group; here: this process's)."""
        import tls_certificates as tc
        dicom_ca = tc.TestCA(directory / "pki", "dicom-ca")
        siem_ca = tc.TestCA(directory / "pki", "siem-ca")
        gateway = dicom_ca.issue("gateway", "gateway.example.internal", server=True)
        content = {("pacsgw-tls", "tls.crt"): gateway.cert, ("pacsgw-tls", "tls.key"): gateway.key,
                   ("pacsgw-tls", "ca.crt"): dicom_ca.cert, ("pacsgw-siem-ca", "ca.crt"): siem_ca.cert}
        directory.mkdir(exist_ok=True)
        written = {}
        for name, source in files.items():
            path = directory / name
            shutil.copyfile(content[source], path)
            os.chown(path, -1, os.getegid())
            path.chmod(default_mode | 0o440)
            written[name] = path
        return written

    def config_check(self, config: Path) -> subprocess.CompletedProcess:
        env = dict(os.environ, PACSGW_MASTER_KEY="ab" * 32)
        return subprocess.run([str(h.pacsgw_bin()), "config", "check", "--config", str(config)],
                              capture_output=True, text=True, env=env, timeout=60)

    def test_the_configmap_holds_a_configuration_the_gateway_accepts(self):
        configmap = self.objects_by_kind()["ConfigMap"][0]
        text = configmap["data"]["pacsgw.yaml"]
        parsed = yaml.safe_load(text)
        mount_path, default_mode, files = self.secret_volume()
        # The mode the key really gets is the one config check accepts: never readable by others.
        self.assertEqual(default_mode & 0o007, 0, oct(default_mode))
        tls = parsed["gateway"]["tls"]
        for key in ("certificate", "private_key", "ca_bundle"):
            self.assertEqual(str(Path(tls[key]).parent), mount_path, key)
            self.assertIn(Path(tls[key]).name, files, key)
        self.assertEqual(files[Path(tls["private_key"]).name], ("pacsgw-tls", "tls.key"))
        self.assertIn(Path(parsed["audit"]["syslog"]["ca_bundle"]).name, files)
        # The Secrets the volume names exist (as examples) with the keys it reads.
        secrets = {s["metadata"]["name"]: s for s in self.objects_by_kind()["Secret"]}
        for secret, key in files.values():
            self.assertIn(key, secrets[secret]["stringData"], secret)
        self.assertEqual(secrets["pacsgw-tls"]["type"], "kubernetes.io/tls")
        with tempfile.TemporaryDirectory() as tmp:
            # The pod's volume paths, moved into a scratch directory so the file checks can run here.
            written = self.materialise_secret_volume(Path(tmp) / "tls", default_mode, files)
            config = Path(tmp) / "pacsgw.yaml"
            config.write_text(text.replace("/var/lib/pacsgw", tmp).replace(mount_path, str(Path(tmp) / "tls")))
            result = self.config_check(config)
            output = result.stdout + result.stderr
            self.assertEqual(result.returncode, 0, output)
            self.assertIn(": OK", result.stdout)
            self.assertNotIn("warning", output.lower(), output)  # TLS everywhere, decrypt bound to an identity
            # The same check refuses the key once others can read it.
            key = written[Path(tls["private_key"]).name]
            key.chmod(0o444)
            result = self.config_check(config)
            self.assertNotEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn("gateway.tls.private_key", result.stdout + result.stderr)
            self.assertIn("gives other users the TLS private key", result.stdout + result.stderr)
        statefulset = self.objects_by_kind()["StatefulSet"][0]
        pod = statefulset["spec"]["template"]["spec"]
        container = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        # DICOM over TLS only, on the registered dicom-tls port.
        self.assertNotIn("port", parsed["gateway"])
        self.assertEqual(ports, {"dicom-tls": 2762, "metrics": parsed["metrics"]["port"]})
        self.assertEqual(ports["dicom-tls"], tls["port"])
        self.assertEqual(container["livenessProbe"]["httpGet"], {"path": "/health/live", "port": "metrics"})
        self.assertEqual(container["readinessProbe"]["httpGet"], {"path": "/health/ready", "port": "metrics"})
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        self.assertIn(parsed["gateway"]["data_dir"], mounts)
        self.assertTrue(mounts[mount_path]["readOnly"])
        self.assertTrue(parsed["keystore"]["path"].startswith(parsed["gateway"]["data_dir"] + "/"))
        self.assertTrue(parsed["audit"]["path"].startswith(parsed["gateway"]["data_dir"] + "/"))
        env = {e["name"]: e for e in container["env"]}
        self.assertIn(parsed["keystore"]["master_key_env"], env)
        security = pod["securityContext"]
        self.assertEqual(security["runAsUser"], 10001)
        # The Secret files' group (fsGroup) is the gateway's own group: what config check accepts.
        self.assertEqual(security["fsGroup"], security["runAsGroup"])
        self.assertTrue(container["securityContext"]["readOnlyRootFilesystem"])
        dicom_service = next(s for s in self.objects_by_kind()["Service"] if s["metadata"]["name"] == "pacsgw")
        self.assertEqual([(p["name"], p["port"]) for p in dicom_service["spec"]["ports"]], [("dicom-tls", 2762)])
        for service in self.objects_by_kind()["Service"]:
            for port in service["spec"]["ports"]:
                self.assertIn(port["targetPort"], ports, service["metadata"]["name"])


class DockerFiles(unittest.TestCase):
    DOCKER = REPO / "docker"

    def test_the_shipped_configuration_checks_clean_and_decrypts_for_nobody(self):
        text = (self.DOCKER / "pacsgw.yaml").read_text()
        parsed = yaml.safe_load(text)
        self.assertFalse(parsed.get("workstations"), "the container example must not grant access by default")
        with tempfile.TemporaryDirectory() as tmp:
            key = Path(tmp) / "master.key"
            key.write_text("ab" * 32 + "\n")
            key.chmod(0o600)
            config = Path(tmp) / "pacsgw.yaml"
            config.write_text(text.replace(parsed["keystore"]["master_key_file"], str(key))
                              .replace("/var/lib/pacsgw", tmp))
            result = subprocess.run([str(h.pacsgw_bin()), "config", "check", "--config", str(config)],
                                    capture_output=True, text=True, timeout=60)
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, output)
        self.assertIn(": OK", output)
        self.assertNotIn("warning", output.lower(), output)

    def test_the_compose_file_fixes_no_address_and_its_names_agree(self):
        compose = yaml.safe_load((self.DOCKER / "docker-compose.yml").read_text())
        text = json.dumps(compose)
        for fixed in ("ipv4_address", "ipam", "subnet"):
            self.assertNotIn(fixed, text)
        services = compose["services"]
        gateway_config = yaml.safe_load((self.DOCKER / "pacsgw.yaml").read_text())
        self.assertIn(gateway_config["upstream"]["host"], services)
        orthanc_text = (self.DOCKER / "orthanc.json").read_text()
        orthanc = json.loads(re.sub(r"^\s*//.*$", "", orthanc_text, flags=re.M))  # Orthanc allows // comments
        entry = orthanc["DicomModalities"]["gateway"]
        self.assertIn(entry["Host"], services)
        self.assertEqual(entry["AET"], gateway_config["gateway"]["ae_title"])
        self.assertEqual(orthanc["DicomAet"], gateway_config["upstream"]["ae_title"])
        self.assertEqual(orthanc["DicomPort"], gateway_config["upstream"]["port"])
        gateway = services["gateway"]
        self.assertIn("./pacsgw.yaml:/etc/pacsgw/pacsgw.yaml:ro", gateway["volumes"])
        self.assertEqual(gateway_config["keystore"]["master_key_file"], f"/run/secrets/{gateway['secrets'][0]}")
        # Orthanc's DICOM port stays inside the compose network.
        self.assertFalse([p for p in services["pacs"].get("ports", []) if str(orthanc["DicomPort"]) in str(p)])

    def test_the_prebuilt_image_runs_like_the_dockerfile_runtime_stage(self):
        def runtime_instructions(text: str, stage_start: str = None) -> list:
            if stage_start:
                text = text[text.index(stage_start):]
            joined = re.sub(r"\\\n\s*", " ", text)
            return [line.strip() for line in joined.splitlines()
                    if re.match(r"\s*(USER|ENV|VOLUME|EXPOSE|HEALTHCHECK|ENTRYPOINT|CMD)\b", line)]

        full = runtime_instructions((self.DOCKER / "Dockerfile").read_text(), "AS runtime")
        prebuilt = runtime_instructions((self.DOCKER / "prebuilt.Dockerfile").read_text())
        self.assertTrue(full)
        self.assertEqual(prebuilt, full)


class SystemdUnit(unittest.TestCase):
    def verify(self, unit_text: str) -> subprocess.CompletedProcess:
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze not installed (Debian package systemd; scripts/setup.sh installs it)")
        with tempfile.TemporaryDirectory() as tmp:
            unit = Path(tmp) / "pacsgw.service"
            # The unit names the installed path; point it at the executable under test.
            unit.write_text(unit_text.replace("/usr/local/bin/pacsgw", str(h.pacsgw_bin())))
            return subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)

    def test_the_unit_verifies_without_findings(self):
        result = self.verify((REPO / "deploy" / "pacsgw.service").read_text())
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        findings = [line for line in (result.stdout + result.stderr).splitlines() if "pacsgw.service" in line]
        self.assertEqual(findings, [])

    def test_verify_reports_a_broken_unit(self):
        text = (REPO / "deploy" / "pacsgw.service").read_text()
        result = self.verify(text.replace("ExecStart=/usr/local/bin/pacsgw", "ExecStart=/nonexistent/pacsgw")
                              .replace("Restart=on-failure", "Restart=sometimes"))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("restart specifier", result.stdout + result.stderr)
        self.assertIn("/nonexistent/pacsgw is not executable", result.stdout + result.stderr)


class GrafanaDashboard(unittest.TestCase):
    dashboard = REPO / "deploy" / "grafana" / "pacsgw-dashboard.json"

    @staticmethod
    def exported_metrics() -> set:
        """Sample names /metrics can contain, from the catalogue every metric must be declared in."""
        catalog = (REPO / "gateway" / "metrics" / "catalog.cpp").read_text()
        names = set()
        for name, kind in re.findall(r'\{"(pacsgw_[a-z0-9_]+)", Kind::(\w+)', catalog):
            names |= {name + s for s in ("_bucket", "_sum", "_count")} if kind == "Histogram" else {name}
        return names

    def queries(self, dashboard: dict) -> list:
        return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]

    def promtool_rules(self, exprs) -> subprocess.CompletedProcess:
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool not installed (Debian package prometheus; scripts/setup.sh installs it)")
        # Grafana's variables, replaced by what Grafana would send.
        concrete = [e.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")
                    for e in exprs]
        rules = {"groups": [{"name": "dashboard", "rules": [
            {"record": f"pacsgw:dashboard_query_{i}", "expr": e} for i, e in enumerate(concrete)]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump(rules, f)
            f.flush()
            return subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True, timeout=60)

    def test_every_query_parses_and_names_exported_metrics(self):
        dashboard = json.loads(self.dashboard.read_text())
        exprs = self.queries(dashboard)
        self.assertGreaterEqual(len(exprs), 10)
        result = self.promtool_rules(exprs)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"SUCCESS: {len(exprs)} rules found", result.stdout)
        exported = self.exported_metrics()
        self.assertIn("pacsgw_encrypt_seconds_bucket", exported)
        used = set()
        for expr in exprs:
            used |= set(re.findall(r"\bpacsgw_[a-z0-9_]+", expr))
        self.assertEqual(used - exported, set())
        # Every family in the catalogue is on the dashboard somewhere (build_info feeds the variables).
        families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in exported}
        shown = {re.sub(r"_(bucket|sum|count)$", "", n) for n in used} | {"pacsgw_build_info"}
        self.assertEqual(families - shown, set())

    def test_promtool_rejects_a_broken_query(self):
        result = self.promtool_rules(["sum by (kind) (rate(pacsgw_upstream_errors_total[5m])"])
        self.assertNotEqual(result.returncode, 0)


if __name__ == "__main__":
    h.main()
