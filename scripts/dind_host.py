"""A Docker-in-Docker host (hotport/dind:sid-29, Docker 29.7.2) started outside Molecule, for the
benchmarks and the e2e suites that need an engine other than this machine's: its dockerd runs
with the daemon.json given, the target image (and others) loaded, since there is no registry."""
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


def start(name, daemon, images=("hotport/target",), firewalld=False):
    """(Re)start container ``name`` as a DinD host whose dockerd answers -> its Docker version.
    With ``firewalld``, the image's supervisor starts D-Bus and firewalld before dockerd."""
    remove(name)
    setup = ("mount -o remount,rw /proc/sys; mkdir -p /etc/docker; echo '%s' > /etc/docker/daemon.json; "
             % json.dumps(daemon))
    if firewalld:
        setup += "HOTPORT_FIREWALLD=1 exec /usr/local/sbin/dind-supervise"
    else:
        setup += "while :; do dockerd >>/var/log/dockerd.log 2>&1; sleep 1; done"
    subprocess.run(["docker", "run", "-d", "--name", name, "--hostname", name]
                   + ["--cap-add=" + cap for cap in CAPABILITIES]
                   + ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                      "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/var/lib/docker:exec", IMAGE,
                      "sh", "-c", setup], capture_output=True, check=True)
    for dummy in range(60):
        if subprocess.run(["docker", "exec", name, "docker", "version"], capture_output=True, check=False).returncode == 0:
            break
        time.sleep(1)
    else:
        raise RuntimeError("the inner dockerd of %s did not start: see docker exec %s cat /var/log/dockerd.log"
                           % (name, name))
    saved = subprocess.Popen(["docker", "save"] + list(images), stdout=subprocess.PIPE)
    subprocess.run(["docker", "exec", "-i", name, "docker", "load", "-q"], stdin=saved.stdout, capture_output=True,
                   check=True)
    saved.wait()
    return subprocess.run(["docker", "exec", name, "docker", "version", "--format", "{{.Server.Version}}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def remove(name):
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
