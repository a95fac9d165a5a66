"""A kind node image made on this machine, for where kindest/node cannot be pulled.

A kind node is a container running systemd, containerd and the kubelet, with every image
the cluster starts preloaded into containerd (nothing can be pulled later either). This
module makes one from pieces built here, following what kind's own `images/base` and
`kind build node-image` produce:

- the base: a Debian bookworm root filesystem (`baseimage.minbase`) with systemd, runc
  and the CNI plugins from Debian, containerd and crictl built from the Go module proxy
  (`tools`), and kind's own base files (entrypoint, systemd units, containerd config) from
  the pinned kind module in the Go module cache;
- Kubernetes' node binaries (kubeadm, kubelet, kubectl) and the images kubeadm deploys
  (`kubeadm config images list`: kube-apiserver, kube-controller-manager, kube-scheduler,
  kube-proxy, etcd, CoreDNS, pause), each a small image around a binary built here from
  the same pinned sources as the sandbox;
- the pod network: kind's kindnetd is published on no reachable source, so the node image
  ships its own minimal one (`node/routes.sh`: the CNI `ptp` plugin and a route per node)
  as its default CNI manifest. kind's storage manifest is left out: kind then installs
  its built-in host-path StorageClass, which needs no image.

Every image is labelled with the hash of its recipe and inputs; a second run reuses them.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ctrain_dev import gobuild
from ctrain_dev.containers import baseimage, images, tools
from ctrain_dev.containers.engine import Engine
from ctrain_dev.containers.errors import BuildError
from ctrain_dev.sandbox import binaries

Say = Callable[[str], None]

HERE = Path(__file__).parent / "node"
NODE_REPOSITORY = "ctrain-kind/node"
ROUTES_REPOSITORY = "ctrain-kind/routes"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- recipes -------------------------------------------------------------------------

# kube-proxy programs packet filtering (iptables or nftables) and reads conntrack; the
# routes daemon needs ip, curl and jq.
NET_RECIPE = """\
FROM {minbase}
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
       iptables nftables ipset conntrack kmod iproute2 curl jq ca-certificates \\
    && apt-get clean && rm -rf /var/lib/apt/lists/*
"""

# systemd is PID 1 in a kind node; everything else is what kubelet, containerd and kind's
# scripts call. runc and the CNI plugins are Debian's; containerd and crictl the Go builds.
# The cleanup keeps systemd from starting services a container must not run.
BASE_RECIPE = """\
FROM {minbase}
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
       systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod \\
       libseccomp2 pigz e2fsprogs bash ca-certificates curl jq procps \\
       runc containernetworking-plugins \\
    && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY kind/ /
COPY bin/ /usr/local/bin/
ARG PAUSE_IMAGE
RUN chmod 0755 /kind /kind/bin /kind/bin/* /usr/local/bin/* \\
    && find /lib/systemd/system/sysinit.target.wants/ \\
            -name systemd-tmpfiles-setup.service -delete \\
    && rm -f /lib/systemd/system/multi-user.target.wants/* \\
             /etc/systemd/system/*.wants/* \\
             /lib/systemd/system/local-fs.target.wants/* \\
             /lib/systemd/system/sockets.target.wants/*udev* \\
             /lib/systemd/system/sockets.target.wants/*initctl* \\
             /lib/systemd/system/basic.target.wants/* \\
    && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \\
    && ln -sf /usr/lib/systemd/systemd /sbin/init \\
    && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
    && systemctl mask systemd-binfmt.service \\
    && mkdir -p /etc/kubernetes/manifests /opt/cni/bin \\
    && cp /usr/lib/cni/host-local /usr/lib/cni/loopback /usr/lib/cni/ptp \\
          /usr/lib/cni/portmap /opt/cni/bin/ \\
    && sed -i -e "s|sandbox_image = .*|sandbox_image = \\"$PAUSE_IMAGE\\"|" \\
              -e "s|restrict_oom_score_adj = false|restrict_oom_score_adj = true|" \\
           /etc/containerd/config.toml \\
    && ctr oci spec \\
       | jq '.hooks.createContainer += [{"path": "/kind/bin/mount-product-files.sh"}]' \\
       | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \\
    && echo "net.ipv4.ip_forward=1" > /etc/sysctl.d/20-ctrain-forwarding.conf
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
"""
# The pause image is the one kubeadm names. restrict_oom_score_adj: a pod's OOM score may
# not go below containerd's own; without CAP_SYS_RESOURCE (see runtime.py) nothing may
# lower a score, and kubelet asks for -998 for its static pods. Forwarding: the project's
# engine leaves the host's off (engine.dockerd_argv); a node routes its pods' traffic in
# its own network namespace.

PAUSE_RECIPE = """\
FROM {minbase} AS build
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev
COPY pause.c /pause.c
RUN gcc -Os -Wall -Werror -static -DVERSION=v{version}-ctrain -o /pause /pause.c && strip /pause
FROM scratch
COPY --from=build /pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
"""

BINARY_RECIPE = """\
FROM {base}
COPY {name} /usr/local/bin/{name}
"""

COREDNS_RECIPE = """\
FROM {base}
COPY coredns /coredns
ENTRYPOINT ["/coredns"]
"""

ROUTES_RECIPE = """\
FROM {base}
COPY routes.sh /routes.sh
"""


# --- the pieces ----------------------------------------------------------------------


def kubeadm_images(kubeadm: Path) -> list[str]:
    """The images kubeadm deploys for this Kubernetes version, as kubeadm names them."""
    done = subprocess.run(
        [
            str(kubeadm),
            "config",
            "images",
            "list",
            "--kubernetes-version",
            binaries.KUBERNETES_VERSION,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BuildError(f"kubeadm config images list failed: {done.stderr.strip()}")
    return done.stdout.split()


def component(image: str) -> str:
    """`kube-apiserver` of `<registry>/kube-apiserver:v1.34.4`: which recipe builds it."""
    return image.rsplit(":", 1)[0].rsplit("/", 1)[-1]


def kind_files() -> Path:
    """kind's base-image files (entrypoint, units, containerd config) at kind's pinned version."""
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    return gobuild.module_dir(tools.KIND.module, tools.KIND.version, env) / "images/base/files"


def build_components(found: Engine, say: Say) -> tuple[list[str], str]:
    """Every image kubeadm needs, built here and tagged as kubeadm names them; and pause's."""
    sandbox_bins = binaries.ensure_binaries(say)
    node = tools.ensure_node_binaries(say)
    etcd = tools.ensure_etcd(say)
    coredns = tools.ensure(tools.COREDNS, say)
    minbase = baseimage.minbase(found, say)
    netbase = baseimage.build(found, "net", NET_RECIPE, say)
    sources = {
        "kube-apiserver": (minbase, sandbox_bins["kube-apiserver"]),
        "kube-controller-manager": (minbase, sandbox_bins["kube-controller-manager"]),
        "kube-scheduler": (minbase, sandbox_bins["kube-scheduler"]),
        "kube-proxy": (netbase, node / "kube-proxy"),
        "etcd": (minbase, etcd / "etcd"),
    }
    built, pause = [], ""
    for image in kubeadm_images(node / "kubeadm"):
        name = component(image)
        if name in sources:
            base, binary = sources[name]
            recipe = BINARY_RECIPE.format(base=base, name=name)
            built.append(images.build(found, image, recipe, {name: binary}, say))
        elif name == "coredns":
            recipe = COREDNS_RECIPE.format(base=minbase)
            built.append(images.build(found, image, recipe, {"coredns": coredns / "coredns"}, say))
        elif name == "pause":
            pause = image
            source = kubernetes_source() / "build/pause/linux/pause.c"
            version = image.rsplit(":", 1)[1]
            recipe = PAUSE_RECIPE.replace("{minbase}", minbase).replace("{version}", version)
            built.append(
                images.build(found, image, recipe, {"pause.c": source}, say, network_host=True)
            )
        else:
            raise BuildError(f"no recipe for {image}, which kubeadm deploys")
    if not pause:
        raise BuildError("kubeadm lists no pause image")
    routes = images.build(
        found,
        f"{ROUTES_REPOSITORY}:{binaries.KUBERNETES_VERSION}",
        ROUTES_RECIPE.format(base=netbase),
        {"routes.sh": HERE / "routes.sh"},
        say,
    )
    return [*built, routes], pause


def kubernetes_source() -> Path:
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    return gobuild.module_dir("k8s.io/kubernetes", binaries.KUBERNETES_VERSION, env)


def kind_base(found: Engine, pause: str, say: Say) -> str:
    """kind's base image, made here (see the module docstring)."""
    containerd = tools.ensure(tools.CONTAINERD, say)
    crictl = tools.ensure(tools.CRICTL, say)
    minbase = baseimage.minbase(found, say)
    recipe = BASE_RECIPE.replace("{minbase}", minbase).replace(
        "ARG PAUSE_IMAGE", f"ARG PAUSE_IMAGE={pause}"
    )
    files = {"kind": kind_files()}
    files |= {f"bin/{name}": containerd / name for name in tools.CONTAINERD.executables}
    files["bin/crictl"] = crictl / "crictl"
    tag = f"ctrain-kind/base:{binaries.KUBERNETES_VERSION}"
    return images.build(found, tag, recipe, files, say, network_host=True)


# --- the node image ------------------------------------------------------------------


def routes_manifest(routes_image: str) -> str:
    return (HERE / "routes.yaml").read_text().replace("image: IMAGE", f"image: {routes_image}")


def node_image(found: Engine, say: Say = _stderr) -> str:
    """The node image's tag, assembled (once per set of inputs) from the pieces above."""
    components, pause = build_components(found, say)
    base = kind_base(found, pause, say)
    node = tools.ensure_node_binaries(say)
    kubectl = binaries.ensure_binaries(say)["kubectl"]
    executables = {"kubeadm": node / "kubeadm", "kubelet": node / "kubelet", "kubectl": kubectl}
    manifest = routes_manifest(components[-1])
    inputs = "\n".join(
        [base, images.image_id(found, base), manifest]
        + [f"{tag} {images.image_id(found, tag)}" for tag in components]
        + [f"{name} {images.file_digest(path)}" for name, path in sorted(executables.items())]
    )
    tag = f"{NODE_REPOSITORY}:{binaries.KUBERNETES_VERSION}-{images.recipe_key(inputs, {})[:12]}"
    if images.label_of(found, tag) is not None:
        return tag
    say(f"assembling the kind node image {tag}")
    _assemble(found, base, tag, executables, manifest, components)
    return tag


def _assemble(
    found: Engine,
    base: str,
    tag: str,
    executables: dict[str, Path],
    manifest: str,
    components: list[str],
) -> None:
    """kind's node-image steps: binaries in, images into containerd, commit."""
    container = found.docker(
        "run",
        "--detach",
        "--entrypoint=sleep",
        "--security-opt",
        "seccomp=unconfined",
        base,
        "infinity",
    ).strip()
    try:
        for name, path in executables.items():
            found.docker("cp", str(path), f"{container}:/usr/bin/{name}")
        exec_ = ["exec", "--interactive", container]
        script = (
            "chmod 0755 /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl"
            " && chown root:root /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl"
            f" && mkdir -p /kind/manifests && printf %s {binaries.KUBERNETES_VERSION}"
            " > /kind/version && cat > /kind/manifests/default-cni.yaml"
        )
        found.docker(*exec_, "sh", "-c", script, stdin=manifest)
        # containerd runs only to import the images (no snapshots: `--no-unpack`).
        found.docker(
            *exec_,
            "sh",
            "-c",
            "containerd > /var/log/containerd-import.log 2>&1 & echo $! > /run/import.pid;"
            " for i in $(seq 60); do ctr version > /dev/null 2>&1 && exit 0; sleep 0.5; done;"
            " cat /var/log/containerd-import.log; exit 1",
        )
        _import(found, container, components)
        listed = found.docker(*exec_, "ctr", "--namespace=k8s.io", "images", "list", "-q").split()
        # containerd names short Docker names with the default registry host in front.
        missing = [
            image
            for image in components
            if not any(name == image or name.endswith(f"/{image}") for name in listed)
        ]
        if missing:
            raise BuildError(f"containerd of the node image lacks {missing}")
        found.docker(*exec_, "sh", "-c", "kill $(cat /run/import.pid); rm -f /run/import.pid")
        found.docker(
            "commit",
            "--change",
            'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]',
            "--change",
            f"LABEL {images.LABEL}={tag.rsplit('-', 1)[-1]}",
            container,
            tag,
        )
    finally:
        found.docker("rm", "--force", "--volumes", container, check=False)


def _import(found: Engine, container: str, components: list[str]) -> None:
    save = subprocess.Popen(["docker", "save", *components], stdout=subprocess.PIPE, env=found.env)
    load = subprocess.run(
        [
            "docker",
            "exec",
            "--interactive",
            container,
            "ctr",
            "--namespace=k8s.io",
            "images",
            "import",
            "--label=io.cri-containerd.pinned=pinned",
            "--all-platforms",
            "--no-unpack",
            "--digests",
            "-",
        ],
        stdin=save.stdout,
        capture_output=True,
        env=found.env,
        check=False,
    )
    save.wait()
    if save.returncode != 0 or load.returncode != 0:
        raise BuildError(f"importing images into the node failed: {load.stderr.decode()[-600:]}")
