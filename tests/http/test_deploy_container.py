"""deploy/container's Containerfiles, checked in make test without building them (make
test-container builds and runs the CPU one with podman, opt-in): checkov's Dockerfile checks find
nothing; the CPU runtime stage installs the Debian package of every shared library the server
links (a new dependency would otherwise build fine and fail at the container's start); and the
images agree with deploy/k8s on the user, the port and the baked model's path."""
import glob
import os
import re
import shutil
import subprocess

import yaml

from conftest import AKE_BIN, REPO
from deploy_tools import checkov, containerfile_stages

CONTAINER = os.path.join(REPO, "deploy", "container")
# linked only by the CUDA backend (the CUDA image's base provides them) or part of every Debian root
NOT_FROM_RUNTIME_STAGE = {"libcublasLt", "libcudart", "libc", "libm", "libstdc++", "libgcc_s"}


def test_checkov_finds_nothing_in_the_containerfiles(tmp_path):
    files = sorted(glob.glob(os.path.join(CONTAINER, "Containerfile.*")))
    assert [os.path.basename(f) for f in files] == ["Containerfile.cpu", "Containerfile.cuda"]
    copies = []
    for f in files:  # checkov knows Dockerfiles by name only
        copies.append(tmp_path / (os.path.basename(f).split(".")[1] + ".Dockerfile"))
        shutil.copy(f, copies[-1])
    failed, passed, skipped = checkov("dockerfile", copies)
    assert not failed, failed
    assert passed >= 100 and skipped == {"CKV_DOCKER_7"}, skipped


def test_the_cpu_runtime_stage_has_every_library_the_server_links():
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]",
                        subprocess.run(["readelf", "-d", AKE_BIN], capture_output=True, text=True).stdout)
    assert needed
    runtime = containerfile_stages(os.path.join(CONTAINER, "Containerfile.cpu"))["runtime"]
    installed = set(re.findall(r"\b(lib[a-z0-9+-]+)\b", runtime.split("apt-get install", 1)[1].split("&&")[0]))
    for so in needed:
        if so.split(".so")[0] in NOT_FROM_RUNTIME_STAGE:
            continue
        path = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
        m = re.search(rf"^\s*{re.escape(so)} \(.*?\) => (\S+)$", path, re.M)
        assert m, so
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(m.group(1))], capture_output=True, text=True).stdout
        pkg = owner.split(":")[0]
        assert pkg in installed, f"{so} comes from {pkg}, which Containerfile.cpu's runtime stage does not install"


def test_the_images_agree_with_the_kubernetes_manifests():
    dep = yaml.safe_load(open(os.path.join(REPO, "deploy", "k8s", "base", "workload", "deployment.yaml")))
    pod = dep["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    for f in ("Containerfile.cpu", "Containerfile.cuda"):
        text = open(os.path.join(CONTAINER, f)).read()
        assert f"USER {pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" in text, f
        assert f"ENV AKE_MODEL={env['AKE_MODEL']}" in text, f
        assert f"EXPOSE {pod['containers'][0]['ports'][0]['containerPort']}" in text, f
        assert "HEALTHCHECK" in containerfile_stages(os.path.join(CONTAINER, f))["runtime"] and "STOPSIGNAL SIGTERM" in text, f
