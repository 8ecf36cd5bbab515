"""Probes shared by the Molecule scenarios' testinfra tests: traffic goes from this controller
to the Docker-in-Docker hosts' addresses, like a remote client's, and nowhere else."""
import os
import socket
import subprocess
import time

ROOT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.getcwd())
PAYLOAD = open(os.path.join(ROOT, "images", "target", "index.html")).read().strip()


def dind_address(host):
    name = host.backend.get_hostname()
    return subprocess.check_output(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
        text=True).split()[0]


def container_ip(host, name, network="bridge"):
    return host.check_output(
        "docker inspect -f '{{(index .NetworkSettings.Networks \"%s\").IPAddress}}' %s" % (network, name))


def tcp_get(address, port):
    """Body of GET / at address:port, or None when nothing answers."""
    try:
        with socket.create_connection((address, port), timeout=3) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return data.decode(errors="replace").partition("\r\n\r\n")[2].strip()


def udp_ask(address, port, tries=3):
    """Answer to a datagram, asking up to ``tries`` times as a UDP client does. One socket,
    so every try is the same flow: a stale conntrack entry would fail them all."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        for dummy in range(tries):
            sock.sendto(b"probe\n", (address, port))
            try:
                return sock.recv(4096).decode().strip()
            except OSError:
                continue
    return None


def eventually(probe, expected, timeout=60):
    """probe() once a second until it returns ``expected`` -> the last answer."""
    deadline = time.time() + timeout
    answer = probe()
    while answer != expected and time.time() < deadline:
        time.sleep(1)
        answer = probe()
    return answer


def uses_systemd(host):
    return host.run("test -d /run/systemd/system").rc == 0


def restart_dockerd(host):
    """Restart the host's dockerd as its init does it -> after the new dockerd answers."""
    old = host.check_output("pidof dockerd")
    if uses_systemd(host):
        host.check_output("systemctl restart docker")
    else:
        host.check_output("kill %s" % old)  # dind-supervise starts it again

    def back():
        return host.run("docker info -f '{{.ID}}'").rc == 0 and host.run("pidof dockerd").stdout.strip() != old

    assert eventually(back, True, timeout=30), "dockerd did not come back"
