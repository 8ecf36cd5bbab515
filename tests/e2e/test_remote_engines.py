"""Remote engines the way operators reach them, with the module running on this machine, outside
the engine's host: a Docker 29.7.2 DinD host serving its API with --tlsverify on 2376 (a CA, a
server certificate for its address and a client certificate, made here with openssl), and one with
Debian's sshd and a key made here (ssh://, docker system dial-stdio). Over both: the sidecar
method maps and the port answers from this machine, a re-run is a no-op, the info module lists
it, absent leaves nothing; the reconciler restores a mapping over TLS; and every bad case is
refused with the fix, nothing changed."""
import http.server
import json
import os
import ssl
import subprocess
import threading

import pytest

from .conftest import ANSIBLE_ENV, PAYLOAD, dind_host, module, sh, start_dind

TLS_HOST = "hp-e2e-tls"
SSH_HOST = "hp-e2e-ssh"
DAEMON_TLS = {"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"], "tlsverify": True,
              "tlscacert": "/certs/ca.pem", "tlscert": "/certs/server.pem", "tlskey": "/certs/server-key.pem"}


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, check=True)


def certificate(directory, name, subject, usage, sans=None, ca="ca", days="2"):
    """A key and a certificate signed by ``ca`` (in ``directory``); ``days`` -1: expired yesterday."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + "-key.pem", "-subj", "/CN=" + subject,
            "-out", name + ".csr", cwd=directory)
    extensions = os.path.join(directory, name + ".ext")
    with open(extensions, "w") as handle:
        handle.write("extendedKeyUsage=%s\n" % usage + ("subjectAltName=%s\n" % sans if sans else ""))
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + "-key.pem", "-CAcreateserial",
            "-days", days, "-extfile", extensions, "-out", name + ".pem", cwd=directory)


def authority(directory, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + "-key.pem", "-subj", "/CN=" + name,
            "-days", "2", "-out", name + ".pem", cwd=directory)


@pytest.fixture(scope="session")
def tls_engine(tmp_path_factory):
    """(docker_host, connection options, the host's address) of a Docker engine that speaks TLS only."""
    certs = str(tmp_path_factory.mktemp("certs"))
    authority(certs, "ca")
    authority(certs, "other-ca")

    def with_certificates(name):
        address = dind_host.address(name)
        certificate(certs, "server", name, "serverAuth", "IP:%s,DNS:%s" % (address, name))
        certificate(certs, "client", "client", "clientAuth")
        sh("docker", "exec", name, "mkdir", "-p", "/certs")
        for file_name in ("ca.pem", "server.pem", "server-key.pem"):
            sh("docker", "cp", os.path.join(certs, file_name), "%s:/certs/%s" % (name, file_name))

    start_dind(TLS_HOST, DAEMON_TLS, before_dockerd=with_certificates)
    address = dind_host.address(TLS_HOST)
    options = dict(validate_certs=True, ca_path=os.path.join(certs, "ca.pem"),
                   client_cert=os.path.join(certs, "client.pem"), client_key=os.path.join(certs, "client-key.pem"))
    yield "tcp://%s:2376" % address, options, address, certs
    dind_host.remove(TLS_HOST)


@pytest.fixture(scope="session")
def ssh_engine(tmp_path_factory):
    """(docker_host, the host's address) of a Docker engine reached over ssh as root, with a key made
    here. root's ssh config on this machine gets a Host block for that address only (its key and a
    known_hosts of its own), removed afterwards."""
    keys = str(tmp_path_factory.mktemp("ssh"))
    key = os.path.join(keys, "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)

    def with_key(name):
        sh("docker", "cp", key + ".pub", name + ":/root/.ssh/authorized_keys")
        sh("docker", "exec", name, "chown", "root:root", "/root/.ssh/authorized_keys")

    start_dind(SSH_HOST, {}, image=dind_host.ssh_image(), before_dockerd=with_key, also="/usr/sbin/sshd")
    address = dind_host.address(SSH_HOST)
    known_hosts = os.path.join(keys, "known_hosts")
    with open(known_hosts, "w") as handle:
        handle.write(sh("ssh-keyscan", "-T", "10", "-t", "ed25519", address).stdout)
    config = os.path.expanduser("~/.ssh/config")
    os.makedirs(os.path.dirname(config), mode=0o700, exist_ok=True)
    before = open(config).read() if os.path.exists(config) else None
    block = "Host %s\n  IdentityFile %s\n  UserKnownHostsFile %s\n  IdentitiesOnly yes\n\n" % (address, key, known_hosts)
    with open(config, "w") as handle:
        handle.write(block + (before or ""))
    try:
        yield "ssh://root@%s" % address, address, key
    finally:
        if before is None:
            os.remove(config)
        else:
            with open(config, "w") as handle:
                handle.write(before)
        dind_host.remove(SSH_HOST)


def on(engine_host, *args):
    return sh("docker", "exec", engine_host, "docker", *args).stdout.strip()


def answers(address, port):
    result = sh("curl", "-sS", "-m", "5", "http://%s:%d/" % (address, port), check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def sidecar_round(engine_host, address, port, **connection):
    """Map web's port 80 with a sidecar over ``connection``: it answers here, a re-run is a no-op,
    the info module lists it, absent leaves no sidecar."""
    if not on(engine_host, "ps", "-q", "--filter", "name=^web$"):
        on(engine_host, "run", "-d", "--name", "web", "--network", "bridge", "hotport/target")
    request = dict(container="web", ports=["%d:80" % port], method="sidecar", sidecar_image="hotport/target",
                   **connection)
    mapped = module(**request)
    assert mapped["changed"] and not mapped["failed"], mapped
    assert mapped["engine"]["publisher"] == "sidecar" and mapped["container"]["name"] == "web"
    for dummy in range(20):  # socat binds a moment after the sidecar starts
        if answers(address, port) == PAYLOAD:
            break
    assert answers(address, port) == PAYLOAD
    again = module(**request)
    assert again["changed"] is False and not again["failed"], again
    info = module(module_name="hotport.docker.container_port_map_info", container="web", **connection)
    assert [(item["method"], item["host_port"], item["stale"]) for item in info["mappings"]] == [
        ("sidecar", port, False)], info
    gone = module(**dict(request, state="absent"))
    assert gone["changed"] and not gone["failed"], gone
    assert on(engine_host, "ps", "-aq", "--filter", "label=io.hotport.sidecar") == ""
    assert answers(address, port) is None


def test_a_tls_engine_publishes_through_a_sidecar(tls_engine):
    docker_host, options, address, certs = tls_engine
    sidecar_round(TLS_HOST, address, 19080, docker_host=docker_host, **options)


def test_the_docker_cli_environment_reaches_a_tls_engine(tls_engine, tmp_path, monkeypatch):
    """DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as the Docker CLI and community.docker read them."""
    docker_host, options, address, certs = tls_engine
    for name in ("ca.pem", "cert.pem", "key.pem"):
        source = {"ca.pem": options["ca_path"], "cert.pem": options["client_cert"], "key.pem": options["client_key"]}
        os.symlink(source[name], str(tmp_path / name))
    for name, value in (("DOCKER_HOST", docker_host), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", str(tmp_path))):
        monkeypatch.setitem(ANSIBLE_ENV, name, value)
    info = module(module_name="hotport.docker.container_port_map_info", owner="hotport")
    assert not info["failed"] and info["engine"]["version"] == "29.7.2", info


class Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def plaintext_port():
    """A plain HTTP server on loopback: what a TLS client meets on a port that does not speak TLS."""
    server = serve(http.server.HTTPServer(("127.0.0.1", 0), Quiet))
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def expired_port(tls_engine):
    """A TLS server on loopback whose certificate, signed by the engine's CA, expired yesterday."""
    certs = tls_engine[3]
    certificate(certs, "expired", "expired", "serverAuth", "IP:127.0.0.1", days="-1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(certs, "expired.pem"), os.path.join(certs, "expired-key.pem"))
    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    serve(server)
    yield server.server_address[1]
    server.shutdown()


def refused(message, **request):
    result = module(**dict(dict(container="web", ports=["19081:80"], method="sidecar", sidecar_image="hotport/target"),
                           **request))
    assert result["failed"] and message in result["msg"], result
    return result


def test_bad_tls_settings_are_refused_with_the_fix_and_change_nothing(tls_engine, plaintext_port, expired_port):
    docker_host, options, address, certs = tls_engine
    before = on(TLS_HOST, "ps", "-a", "--format", "{{.Names}}")
    refused("certificate has expired", docker_host="tcp://127.0.0.1:%d" % expired_port, **options)
    refused("was not accepted", docker_host=docker_host, **dict(options, ca_path=os.path.join(certs, "other-ca.pem")))
    refused("Hostname mismatch", docker_host=docker_host, tls_hostname="not-the-engine.example", **options)
    refused("speaks TLS: turn validate_certs on", docker_host=docker_host)
    refused("does that port speak TLS", docker_host="tcp://127.0.0.1:%d" % plaintext_port, tls=True)
    refused("client_key /nope/key.pem does not exist", docker_host=docker_host,
            **dict(options, client_key="/nope/key.pem"))
    refused("method: kernel writes the firewall of the machine this runs on", docker_host=docker_host,
            **dict(options, method="kernel"))
    assert on(TLS_HOST, "ps", "-a", "--format", "{{.Names}}") == before


def test_the_reconciler_restores_a_sidecar_over_tls(tls_engine, reconciler, tmp_path):
    docker_host, options, address, certs = tls_engine
    if not on(TLS_HOST, "ps", "-q", "--filter", "name=^web$"):
        on(TLS_HOST, "run", "-d", "--name", "web", "hotport/target")
    state_file = str(tmp_path / "mappings.json")
    with open(state_file, "w") as handle:
        entry = {"container": "web", "ports": ["19082:80"], "method": "sidecar", "sidecar_image": "hotport/target"}
        json.dump({"version": 1, "mappings": [entry]}, handle)
    command = [reconciler, "apply", "--state-file", state_file, "--docker-host", docker_host, "--tls-verify",
               "--ca-path", options["ca_path"], "--client-cert", options["client_cert"],
               "--client-key", options["client_key"]]
    try:
        for dummy in range(2):  # created, then removed by hand and created again
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "+ sidecar hotport-web-tcp-19082" in result.stdout
            on(TLS_HOST, "rm", "-f", "hotport-web-tcp-19082")
    finally:
        module(container="web", state="absent", method="sidecar", docker_host=docker_host, **options)


def test_an_ssh_engine_publishes_through_a_sidecar(ssh_engine):
    docker_host, address, key = ssh_engine
    sidecar_round(SSH_HOST, address, 19090, docker_host=docker_host)


def test_ssh_failures_are_clear_errors(ssh_engine, tmp_path):
    docker_host, address, key = ssh_engine
    refused("Permission denied", docker_host="ssh://nobody@%s" % address)
    refused("method: kernel writes the firewall", docker_host=docker_host, method="kernel")
    closed = refused("ssh to ssh://root@%s:1 failed" % address, docker_host="ssh://root@%s:1" % address)
    assert "Connection refused" in closed["msg"]
