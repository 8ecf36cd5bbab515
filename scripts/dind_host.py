"""A Docker-in-Docker host (hotport/dind:sid-29, Docker 29.7.2) started outside Molecule, for the
benchmarks and the e2e suites that need an engine other than this machine's: its dockerd runs
with the daemon.json given, the target image (and others) loaded, since there is no registry."""
import hashlib
import json
import subprocess
import time

IMAGE = "hotport/dind:sid-29"
# Every capability the outer Docker 20.10 knows but CAP_SYS_RESOURCE (--privileged fails here).
CAPABILITIES = ("AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER "
                "FSETID IPC_LOCK IPC_OWNER KILL LEASE LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN "
                "NET_BIND_SERVICE NET_BROADCAST NET_RAW SETFCAP SETGID SETPCAP SETUID SYS_ADMIN SYS_BOOT "
                "SYS_CHROOT SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_TIME SYS_TTY_CONFIG "
                "SYSLOG WAKE_ALARM").split()
NFTABLES = {"firewall-backend": "nftables", "bridge-accept-fwmark": "0x4000000/0x4000000"}


def start(name, daemon, images=("hotport/target",), firewalld=False, image=IMAGE, before_dockerd=None, also=""):
    """(Re)start container ``name`` as a DinD host whose dockerd answers -> its Docker version.
    With ``firewalld``, the image's supervisor starts D-Bus and firewalld before dockerd.
    ``before_dockerd(name)`` runs once the container runs, before dockerd can start (it waits for
    /etc/docker/ready): for what needs the host's address, such as a TLS certificate. ``also``: a
    shell command started first (sshd)."""
    setup = ("mount -o remount,rw /proc/sys; mkdir -p /etc/docker; echo '%s' > /etc/docker/daemon.json; %s"
             % (json.dumps(daemon), also + "; " if also else ""))
    if before_dockerd:
        setup += "until [ -e /etc/docker/ready ]; do sleep 0.2; done; "
    if firewalld:
        setup += "HOTPORT_FIREWALLD=1 exec /usr/local/sbin/dind-supervise"
    else:
        setup += "while :; do dockerd >>/var/log/dockerd.log 2>&1; sleep 1; done"
    _run_host(name, image, [], setup)
    if before_dockerd:
        before_dockerd(name)
        subprocess.run(["docker", "exec", name, "touch", "/etc/docker/ready"], check=True)
    return _engine_ready(name, ["docker", "exec", "-i", name, "docker"], images, "/var/log/dockerd.log")


# Rootless Docker 29.7.2 run by the ordinary user hp (molecule/rootless/molecule.yml says why each step).
ROOTLESS_SOCKET = "unix:///tmp/rl-run/docker.sock"
ROOTLESS_SETUP = (
    "for path in $(awk '$5 ~ \"^/(proc|sys)/.\" && $5 !~ \"^/sys/fs/cgroup\" {print $5}' /proc/self/mountinfo | sort -r); "
    "do umount $path; done; chmod 666 /dev/net/tun; install -d -o hp -m 700 /tmp/rl-run; "
    "exec runuser -u hp -- sh -c 'export XDG_RUNTIME_DIR=/tmp/rl-run PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
    "DOCKERD_ROOTLESS_ROOTLESSKIT_NET=slirp4netns DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER=builtin; "
    "while :; do dockerd-rootless.sh >>/tmp/rl-run/dockerd.log 2>&1; sleep 1; done'")


def start_rootless(name, images=("hotport/target",)):
    """(Re)start container ``name`` as a DinD host running rootless Docker as hp (uid 1000), whose
    engine answers at ROOTLESS_SOCKET, with ``images`` loaded -> its Docker version."""
    _run_host(name, IMAGE, ["--device", "/dev/net/tun", "--tmpfs", "/home/hp/.local:exec,uid=1000,gid=1000"],
              ROOTLESS_SETUP)
    return _engine_ready(name, ["docker", "exec", "-i", "-u", "hp", "-e", "DOCKER_HOST=" + ROOTLESS_SOCKET, name,
                                "docker"], images, "/tmp/rl-run/dockerd.log")


def _run_host(name, image, extra, setup):
    """A fresh DinD container ``name`` running ``setup`` with every capability the machine hands out."""
    remove(name)
    subprocess.run(["docker", "run", "-d", "--name", name, "--hostname", name]
                   + ["--cap-add=" + cap for cap in CAPABILITIES]
                   + ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                      "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/var/lib/docker:exec"]
                   + extra + [image, "sh", "-c", setup], capture_output=True, check=True)


def _engine_ready(name, docker, images, log):
    """Wait for the inner engine (reached by the ``docker`` CLI argv), load ``images`` -> its version."""
    for dummy in range(90):
        if subprocess.run(docker + ["version"], capture_output=True, check=False).returncode == 0:
            break
        time.sleep(1)
    else:
        raise RuntimeError("the inner dockerd of %s did not start: see docker exec %s cat %s" % (name, name, log))
    saved = subprocess.Popen(["docker", "save"] + list(images), stdout=subprocess.PIPE)
    subprocess.run(docker + ["load", "-q"], stdin=saved.stdout, capture_output=True, check=True)
    saved.wait()
    return subprocess.run(docker + ["version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                          check=True).stdout.strip()


def remove(name):
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def address(name):
    return subprocess.run(["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name], capture_output=True,
                          text=True, check=True).stdout.strip()


SSH_IMAGE = "hotport/dind:sid-29-ssh"
# What SSH_IMAGE adds to IMAGE: Debian's openssh-server. Rebuilt when this or IMAGE changes.
SSH_RECIPE = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends " \
             "openssh-server && rm -rf /var/lib/apt/lists/* && mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh"


def ssh_image():
    """SSH_IMAGE, built from IMAGE once (no registry: the package comes from the Debian mirror)."""
    base = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", IMAGE], capture_output=True, text=True,
                          check=True).stdout.strip()
    recipe = hashlib.sha256((base + SSH_RECIPE).encode()).hexdigest()[:12]
    found = subprocess.run(["docker", "image", "inspect", "-f", '{{index .Config.Labels "hotport.recipe"}}',
                            SSH_IMAGE], capture_output=True, text=True, check=False).stdout.strip()
    if found == recipe:
        return SSH_IMAGE
    builder = subprocess.run(["docker", "run", "-d", IMAGE, "sh", "-c", SSH_RECIPE], capture_output=True, text=True,
                             check=True).stdout.strip()
    try:
        if subprocess.run(["docker", "wait", builder], capture_output=True, text=True, check=True).stdout.strip() != "0":
            raise RuntimeError("building %s failed: %s" % (SSH_IMAGE, subprocess.run(
                ["docker", "logs", builder], capture_output=True, text=True, check=False).stderr[-2000:]))
        subprocess.run(["docker", "commit", "-c", "LABEL hotport.recipe=" + recipe, builder, SSH_IMAGE],
                       capture_output=True, check=True)
    finally:
        subprocess.run(["docker", "rm", "-f", builder], capture_output=True, check=False)
    return SSH_IMAGE
