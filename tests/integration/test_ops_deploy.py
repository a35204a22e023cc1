"""Deploy files: every JSON and YAML parses; the Kubernetes config is a valid proxy config with
probes on /health and /ready; the alert rules and dashboard only use metrics a real proxy
exports; promtool checks and unit-tests the rules when it is installed (Debian's `prometheus`
package; not in scripts/setup, see docs/operations.md); the Dockerfile's runtime packages cover
the binaries' shared libraries; the systemd units pass systemd-analyze verify; the compose file
runs two instances that share quotas through its Redis."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from harness import helios_binary, psql

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
PROM = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "helios-proxy-dashboard.json"
COMPOSE = DEPLOY / "compose"
METRIC = re.compile(r"\bhelios_proxy_[a-z_]+\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def yaml_docs(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_objects() -> dict:
    objs = {}
    for f in sorted(K8S.glob("*.yaml")):
        for d in yaml_docs(f):
            objs[(d["kind"], d["metadata"]["name"] if "metadata" in d else f.name)] = d
    return objs


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
            for r in g["rules"]]


def promtool() -> str:
    tool = shutil.which("promtool")
    if not tool:
        pytest.skip("promtool not installed (Debian package prometheus; see docs/operations.md)")
    return tool


def test_every_json_and_yaml_file_parses():
    files = [p for p in DEPLOY.rglob("*") if p.suffix in (".json", ".yaml", ".yml")]
    assert len(files) >= 8, files
    for p in files:
        if p.suffix == ".json":
            json.loads(p.read_text())
        else:
            assert yaml_docs(p), f"{p} is empty"


def test_kubernetes_manifests_from_seed_example_4():
    objs = k8s_objects()
    dep = objs[("Deployment", "helios-proxy")]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"postgres": 5432, "admin": 9090, "metrics": 9091}
    live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
    assert live["path"] == "/health" and ready["path"] == "/ready"
    assert ports[live["port"]] == 9090 and ports[ready["port"]] == 9090
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9091"

    svc = objs[("Service", "helios-proxy")]
    assert {p["targetPort"] for p in svc["spec"]["ports"]} == set(ports.values())
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]

    # The ConfigMap is a config the proxy accepts, listening where the pod's ports say.
    cm = objs[("ConfigMap", "helios-proxy-config")]
    toml_text = cm["data"]["proxy.toml"]
    cfg = tomllib.loads(toml_text)
    assert cfg["proxy"]["listen_address"].endswith(":5432")
    assert cfg["proxy"]["admin_listen_address"] == "0.0.0.0:9090"
    assert cfg["metrics"]["prometheus_port"] == 9091
    assert cfg["tenant_quotas"]["limits"][0]["tenant_pattern"] == "tenant_*"
    # The replicas share quotas through the Redis of redis.yaml (issue 16).
    redis_svc = objs[("Service", "helios-redis")]
    assert cfg["fleet"]["redis_url"].startswith(
        f"redis://{redis_svc['metadata']['name']}.{redis_svc['metadata']['namespace']}.")
    assert redis_svc["spec"]["selector"] == \
        objs[("Deployment", "helios-redis")]["spec"]["selector"]["matchLabels"]
    # A drain always finishes before the kubelet's SIGKILL.
    drain = int(cfg["proxy"]["drain_timeout"].rstrip("s"))
    assert pod["terminationGracePeriodSeconds"] > drain
    # Secrets come from the environment, named in the pod spec.
    env = {e["name"] for e in c["env"]}
    for var in re.findall(r"\$\{(\w+)\}", toml_text):
        assert var in env, var


def test_kubernetes_config_passes_heliosctl_check(tmp_path):
    cm = k8s_objects()[("ConfigMap", "helios-proxy-config")]
    path = tmp_path / "proxy.toml"
    path.write_text(cm["data"]["proxy.toml"])
    ctl = helios_binary().parent / "heliosctl"
    cp = subprocess.run([str(ctl), "check", "--no-secrets", str(path)], capture_output=True,
                        text=True, timeout=30)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert f"{path}: ok" in cp.stdout


def test_compose_file_runs_two_instances_sharing_quotas_through_its_redis():
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    services = compose["services"]
    helios = {n: s for n, s in services.items() if n.startswith("helios-")}
    assert len(helios) == 2, sorted(services)
    # Both from the project's image, with the same config, on different host ports.
    for s in helios.values():
        assert s["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert (COMPOSE / s["build"]["context"] / s["build"]["dockerfile"]).is_file()
        assert "./proxy.toml:/etc/helios/proxy.toml:ro" in s["volumes"]
        assert s["stop_grace_period"] == "45s"
    host_ports = [p.split(":")[0] for s in helios.values() for p in s["ports"]]
    assert len(host_ports) == len(set(host_ports)), host_ports
    cfg = tomllib.loads((COMPOSE / "proxy.toml").read_text())
    # The config's Redis and database are the compose file's services.
    assert cfg["fleet"]["redis_url"].startswith("redis://redis:")
    assert "redis" in services and cfg["backend"]["host"] in services
    assert cfg["proxy"]["listen_address"].endswith(":5432")
    assert int(cfg["proxy"]["drain_timeout"].rstrip("s")) < 45
    # Every ${VAR} the config reads is given to the instances.
    for s in helios.values():
        for var in re.findall(r"\$\{(\w+)\}", (COMPOSE / "proxy.toml").read_text()):
            assert var in s["environment"], var


def test_compose_config_passes_heliosctl_check_for_two_instances():
    ctl = helios_binary().parent / "heliosctl"
    cp = subprocess.run([str(ctl), "check", "--no-secrets", "--instances", "2",
                         str(COMPOSE / "proxy.toml")], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "proxy.toml: ok" in cp.stdout


def test_kustomization_builds_when_kubectl_is_here():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl not installed")
    cp = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True,
                        timeout=60)
    assert cp.returncode == 0, cp.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(cp.stdout) if d)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Service", "Service"]  # + Redis


def test_alert_rules_carry_the_seeds_promql():
    exprs = " ".join(r["expr"] for r in alert_rules())
    compact = re.sub(r"\s+", "", exprs)
    assert "(helios_proxy_tenant_connections/helios_proxy_tenant_max_connections)>0.9" in compact
    assert "histogram_quantile(0.99," in compact and \
        "helios_proxy_acquire_latency_seconds_bucket" in compact and ">0.1" in compact
    assert ("helios_proxy_backend_connections_active/helios_proxy_backend_connections_max>0.95"
            in compact)
    assert "rate(helios_proxy_quota_rejections_total[5m]))>10" in compact
    for r in alert_rules():
        assert r["alert"] and r["annotations"]["summary"], r
        assert r["labels"]["severity"] in ("warning", "critical"), r


def test_promtool_checks_and_unit_tests_the_rules(tmp_path):
    tool = promtool()
    for args in (["check", "rules", str(PROM / "alerts.yml")],
                 ["check", "config", str(PROM / "prometheus.yml")],
                 ["test", "rules", str(PROM / "alerts_test.yml")]):
        cp = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60,
                            cwd=PROM)
        assert cp.returncode == 0, f"promtool {' '.join(args)}:\n{cp.stdout}{cp.stderr}"


def test_promtool_parses_every_dashboard_query(tmp_path):
    tool = promtool()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}",
         "expr": e.replace("$__rate_interval", "5m").replace("$instance", ".*")
                  .replace("$tenant", ".*")}
        for i, e in enumerate(dashboard_exprs())]}]}
    f = tmp_path / "dashboard_rules.yml"
    f.write_text(yaml.safe_dump(rules))
    cp = subprocess.run([tool, "check", "rules", str(f)], capture_output=True, text=True,
                        timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr


@pytest.mark.needs("metrics")
@pytest.mark.timeout(60)
def test_alerts_and_dashboard_use_only_exported_metrics(proxy_factory):
    proxy = proxy_factory({"tenant_quotas": {"enabled": True}})
    psql(proxy.conninfo(application_name="tenant_deploy"), "SELECT 1")
    assert proxy.admin_post("/api/v1/reload").status_code == 200  # last_reload_* appear
    import requests

    text = requests.get(proxy.metrics_url, timeout=5).text
    exported = set(re.findall(r"^# TYPE (\S+) (\S+)", text, re.M))
    names = set()
    for name, kind in exported:
        names.add(name)
        if kind == "histogram":
            names.update(name + s for s in HISTOGRAM_SUFFIXES)
    used = set(METRIC.findall((PROM / "alerts.yml").read_text()))
    used |= set(METRIC.findall(DASHBOARD.read_text()))
    used |= set(METRIC.findall((PROM / "alerts_test.yml").read_text()))
    missing = sorted(used - names)
    assert not missing, f"used in deploy/ but not exported: {missing}"
    # The seed's metric names are all there.
    for n in ("helios_proxy_tenant_connections", "helios_proxy_tenant_max_connections",
              "helios_proxy_acquire_latency_seconds", "helios_proxy_backend_connections_active",
              "helios_proxy_backend_connections_max", "helios_proxy_quota_rejections_total"):
        assert n in names, n


def test_dockerfile_is_debian_12_built_with_scripts_setup():
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms == ["debian:12", "debian:12-slim"], froms
    assert re.search(r"^RUN scripts/setup", text, re.M)
    for src in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        if src != ".":
            assert (ROOT / src).exists(), src
    assert "ENTRYPOINT [\"/usr/local/bin/heliosproxy\"]" in text


def test_dockerfile_runtime_packages_cover_the_binaries():
    if not shutil.which("dpkg") or not shutil.which("ldd"):
        pytest.skip("needs dpkg and ldd")
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    runtime = text.split("FROM debian:12-slim", 1)[1]
    block = runtime.split("apt-get install", 1)[1].split("&& rm", 1)[0]
    listed = {w for w in block.replace("\\", " ").split() if not w.startswith("-")}
    base = {"libc6", "libstdc++6", "libgcc-s1"}  # in debian:12-slim already
    libs = set()
    for binary in ("heliosproxy", "heliosctl"):
        out = subprocess.run(["ldd", str(helios_binary().parent / binary)],
                             capture_output=True, text=True).stdout
        for lib in re.findall(r"=> (\S+) \(", out):
            libs.add(str(Path(lib).resolve()))
            libs.add(lib)  # usrmerge: dpkg may know either path
    owners = subprocess.run(["dpkg", "-S", *sorted(libs)], capture_output=True, text=True)
    needed = {line.split(":", 1)[0] for line in owners.stdout.splitlines() if ": /" in line}
    assert needed, owners.stderr
    missing = sorted(needed - listed - base)
    assert not missing, f"runtime image lacks {missing}"


def test_systemd_units_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    units = [DEPLOY / "systemd" / "heliosproxy.service",
             DEPLOY / "systemd" / "heliosproxy@.service"]
    for u in units:
        text = u.read_text()
        stop = int(re.search(r"^TimeoutStopSec=(\d+)", text, re.M).group(1))
        assert stop > 30, "must exceed the default drain_timeout (30 s)"
        assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID", text, re.M)
        assert re.search(r"^KillSignal=SIGTERM", text, re.M)
    if not tool:
        pytest.skip("systemd-analyze not installed")
    for u in units:
        # verify wants the binaries to exist: point at /bin/true.
        name = u.name.replace("@.service", "@blue.service")
        copy = tmp_path / name
        copy.write_text(u.read_text().replace("/usr/local/bin/heliosproxy", "/bin/true"))
        cp = subprocess.run([tool, "verify", str(copy)], capture_output=True, text=True,
                            timeout=60)
        problems = [line for line in (cp.stdout + cp.stderr).splitlines()
                    if str(copy) in line or "heliosproxy" in line]
        assert cp.returncode == 0 and not problems, cp.stdout + cp.stderr


def test_vagrantfile_builds_with_scripts_setup_on_a_btf_kernel():
    text = (ROOT / "vagrant" / "Vagrantfile").read_text()
    assert 'config.vm.box = "debian/bookworm64"' in text
    assert "scripts/setup" in text and "/sys/kernel/btf/vmlinux" in text
    ruby = shutil.which("ruby")
    if ruby:
        cp = subprocess.run([ruby, "-c", str(ROOT / "vagrant" / "Vagrantfile")],
                            capture_output=True, text=True, timeout=30)
        assert cp.returncode == 0, cp.stderr
