#!/usr/bin/env python3
"""Fault-injection suite: real `feedback-hub` and `feedback-agent` processes on loopback,
faults injected for real, then a check that every rating the agent acknowledged to its
caller (HTTP 202) is in the hub's store exactly once, and every negative one raised
exactly one alert (one webhook id at a real local receiver).

The scale-out scenarios run two hubs on one PostgreSQL database of the server named by
FEEDBACK_TEST_POSTGRES_URL, _PASSWORD, _BIN and _DIR (faults.sh starts a throwaway one).

Run through scripts/faults.sh, which builds first. Every scenario is bounded in time.
"""
import base64, collections, hashlib, hmac, http.server, json, os, random, shutil, signal, socket, sqlite3
import subprocess, sys, tempfile, threading, time, urllib.error, urllib.parse, urllib.request, uuid

BIN = sys.argv[1]
RATINGS = int(os.environ.get("RATINGS", "2000"))
WORK = tempfile.mkdtemp(prefix="faults-")
SECRET = os.urandom(24)


HANDED_OUT = set()


def free_port():
    # A port free now and never handed out before in this run: the kernel may offer a port
    # again once its probe socket closes, before the process it was meant for binds it (a
    # relay once failed to listen on the port just given to its link's proxy).
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in HANDED_OUT:
            HANDED_OUT.add(port)
            return port


def wait_for(condition, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if condition():
                return True
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {seconds} s waiting for {what}")


def get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


class Receiver:
    """Webhooks: alert record id -> set of webhook ids (a retry keeps its id)."""

    def __init__(self):
        self.alerts = collections.defaultdict(set)
        self.bad_signatures = 0
        self.torn = 0
        receiver = self

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-request (a hub SIGKILLed): not delivered
                    receiver.torn += 1
                    return
                signed = f"{self.headers['webhook-id']}.{self.headers['webhook-timestamp']}.".encode() + body
                expected = "v1," + base64.b64encode(hmac.new(SECRET, signed, hashlib.sha256).digest()).decode()
                if not hmac.compare_digest(expected, self.headers.get("webhook-signature", "")):
                    receiver.bad_signatures += 1
                alert = json.loads(body)["alert"]
                receiver.alerts[alert["recordId"]].add(self.headers["webhook-id"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Hook)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class CuttingProxy:
    """A TCP proxy that cuts its first `cuts_left` connections after a random 2-8 KB (past
    the TLS handshake, so mostly in the middle of a frame), then lets the network heal."""

    def __init__(self, target_port):
        self.target = target_port
        self.cuts = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", free_port()))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.running = True
        self.cuts_left = 6
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            budget = [random.randint(2_000, 8_000) if self.cuts_left > 0 else 1 << 62]
            self.cuts_left -= 1
            budget.append(False)  # whether this connection was cut
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(a, b, client, upstream, budget), daemon=True).start()

    def pipe(self, source, sink, client, upstream, budget):
        try:
            while True:
                data = source.recv(4096)
                if not data:
                    break
                budget[0] -= len(data)
                if budget[0] <= 0 and self.running:
                    if not budget[1]:
                        budget[1] = True
                        self.cuts += 1
                    sink.sendall(data[: len(data) // 2])
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (client, upstream):
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()
            except OSError:
                pass


class GateProxy:
    """A TCP proxy whose link can be cut: `cut()` drops every connection and refuses new ones
    (a WAN link that is down), `heal()` lets traffic through again."""

    def __init__(self, target_port):
        self.target = target_port
        self.open = True
        self.sockets = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", free_port()))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    def pipe(self, source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.close()
            except OSError:
                pass

    def cut(self):
        self.open = False
        with self.lock:
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.sockets = []

    def heal(self):
        self.open = True

    def close(self):
        self.cut()
        self.listener.close()


class System:
    def __init__(self, name, receiver, quota=None, segment_bytes=None, relay=False, relay_quota=None):
        self.dir = os.path.join(WORK, name)
        os.makedirs(self.dir)
        self.port, self.http, self.intake = free_port(), free_port(), free_port()
        self.hub_process = None
        self.agent_process = None
        subprocess.run([f"{BIN}/feedback-hub", "init", f"{self.dir}/hub", "--listen", f"127.0.0.1:{self.port}",
                        "--http", f"127.0.0.1:{self.http}"], check=True, capture_output=True)
        secret = "whsec_" + base64.b64encode(SECRET).decode()
        with open(f"{self.dir}/hub/alerts.yaml", "w") as f:
            f.write(f'targets:\n  manager: {{url: "http://127.0.0.1:{receiver.port}/manager", secret: "{secret}"}}\n'
                    "rules:\n  - {name: detractor, scale: nps, notify: [manager]}\n"
                    "delivery: {firstRetry: 100ms, maxRetry: 1s}\n")
        with open(f"{self.dir}/hub/hub.yaml", "a") as f:
            f.write("alerts: alerts.yaml\n")
        os.makedirs(f"{self.dir}/agent")
        subprocess.run([f"{BIN}/feedback-agent", "keygen", "--out", f"{self.dir}/agent/agent.json"], check=True, capture_output=True)
        token = subprocess.run([f"{BIN}/feedback-hub", "agents", "token", "--config", f"{self.dir}/hub/hub.yaml", "--site", "faults"],
                               check=True, capture_output=True, text=True).stdout.strip()
        self.token = token
        self.hub_address = f"127.0.0.1:{self.port}"
        self.quota = quota
        self.segment_bytes = segment_bytes
        self.relay_process = None
        self.relay_address = None
        if relay:
            self.relay_port, self.relay_http = free_port(), free_port()
            self.relay_address = f"127.0.0.1:{self.relay_port}"
            self.relay_quota = relay_quota
            os.makedirs(f"{self.dir}/relay")
            subprocess.run([f"{BIN}/feedback-agent", "keygen", "--out", f"{self.dir}/relay/agent.json"], check=True, capture_output=True)
            self.relay_token = subprocess.run(
                [f"{BIN}/feedback-hub", "agents", "token", "--config", f"{self.dir}/hub/hub.yaml", "--site", "faults", "--relay"],
                check=True, capture_output=True, text=True).stdout.strip()
            subprocess.run([f"{BIN}/feedback-hub", "certs", "relay", "--hostname", "127.0.0.1", "--ca-certificate",
                            f"{self.dir}/hub/ca.pem", "--ca-key", f"{self.dir}/hub/ca-key.pem", "--out", f"{self.dir}/relay"],
                           check=True, capture_output=True)

    def write_relay_config(self, hub_address=None):
        spool = "spool: {directory: spool, fsync: \"5\"" + (f", quotaBytes: {self.relay_quota}, reserveBytes: 4096" if self.relay_quota else "") + "}"
        with open(f"{self.dir}/relay/agent.yaml", "w") as f:
            f.write(f'identity: agent.json\nhubs: ["{hub_address or self.hub_address}"]\nca: {self.dir}/hub/ca.pem\n'
                    f'enrollmentToken: "{self.relay_token}"\n{spool}\nbatch: {{maxRecords: 100, maxAgeMs: 20}}\n'
                    f'http: {{listen: "127.0.0.1:{self.relay_http}"}}\ndrainTimeoutMs: 2000\n'
                    f'relay: {{listen: "{self.relay_address}", certificate: relay.pem, privateKey: relay-key.pem}}\n')

    def start_relay(self):
        self.relay_process = self.launch("relay", "feedback-agent run", "relay/agent.yaml", f"{self.relay_http}/healthz")

    def enroll_agent(self):
        """Enrolls the agent with the hub directly (the faults are about the relay, not enrollment)."""
        subprocess.run([f"{BIN}/feedback-agent", "enroll", "--identity", f"{self.dir}/agent/agent.json", "--hub", self.hub_address,
                        "--ca", f"{self.dir}/hub/ca.pem", "--token", self.token], check=True, capture_output=True)

    def write_agent_config(self, hub_address=None):
        spool = "spool: {directory: spool, fsync: \"5\"" + (f", quotaBytes: {self.quota}" if self.quota else "") \
            + (f", segmentBytes: {self.segment_bytes}, reserveBytes: 4096" if self.segment_bytes else "") + "}"
        with open(f"{self.dir}/agent/agent.yaml", "w") as f:
            f.write(f'identity: agent.json\nhubs: ["{hub_address or self.hub_address}"]\nca: {self.dir}/hub/ca.pem\n'
                    f'enrollmentToken: "{self.token}"\n{spool}\nbatch: {{maxRecords: 100, maxAgeMs: 20}}\n'
                    f'http: {{listen: "127.0.0.1:{self.intake}"}}\ndrainTimeoutMs: 2000\n')

    def launch(self, name, command, config, ready_path):
        """Starts `command` (e.g. "feedback-hub serve") on the config under self.dir, logging to
        name.log, and waits until http://127.0.0.1:ready_path answers."""
        log = open(f"{self.dir}/{name}.log", "a")
        program, verb = command.split()
        process = subprocess.Popen([f"{BIN}/{program}", verb, "--config", f"{self.dir}/{config}", "--log-level", "warning"],
                                   stdout=log, stderr=log)
        wait_for(lambda: get(f"http://127.0.0.1:{ready_path}"), 20, name)
        return process

    def start_hub(self):
        self.hub_process = self.launch("hub", "feedback-hub serve", "hub/hub.yaml", f"{self.http}/readyz")

    def start_agent(self):
        self.agent_process = self.launch("agent", "feedback-agent run", "agent/agent.yaml", f"{self.intake}/healthz")

    @staticmethod
    def kill(process, sig=signal.SIGKILL):
        if process and process.poll() is None:
            process.send_signal(sig)
            process.wait(timeout=30)

    def stop(self):
        self.kill(self.agent_process, signal.SIGTERM)
        self.kill(self.relay_process, signal.SIGTERM)
        self.kill(self.hub_process, signal.SIGTERM)

    def post(self, count, accepted, refused, stop_at=None, on_progress=None):
        """Posts `count` ratings in requests of 10 from 4 threads; records accepted ids and scores."""
        lock = threading.Lock()
        counter = iter(range(0, count, 10))

        def worker():
            for start in counter:
                body = json.dumps([{"source": "api", "scale": "nps", "score": (start + i) % 11, "site": "faults",
                                    "customer": f"c-{start + i}"} for i in range(min(10, count - start))]).encode()
                request = urllib.request.Request(f"http://127.0.0.1:{self.intake}/v1/feedback", body,
                                                 {"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        ids = json.loads(response.read())["ids"]
                        with lock:
                            for i, record_id in enumerate(ids):
                                accepted[record_id.replace("-", "")] = (start + i) % 11
                except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                    with lock:
                        refused[0] += min(10, count - start)
                if on_progress:
                    on_progress(len(accepted))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def stored(self):
        with sqlite3.connect(f"file:{self.dir}/hub/feedback.sqlite?mode=ro", uri=True, timeout=10) as db:
            return collections.Counter(row[0] for row in db.execute("SELECT lower(hex(id)) FROM records"))


def check(name, system, receiver, accepted, refused, seconds=60):
    """Waits until the hub holds every accepted rating (bounded), then counts."""
    def all_in():
        stored = system.stored()
        return all(stored[i] >= 1 for i in accepted) and all(
            len(receiver.alerts.get(f"{i[:8]}-{i[8:12]}-{i[12:16]}-{i[16:20]}-{i[20:]}", ())) >= 1
            for i, score in accepted.items() if score <= 6)
    try:
        wait_for(all_in, seconds, f"{name}: every accepted rating stored and alerted")
    except RuntimeError as error:
        print(f"  {error}", file=sys.stderr)
    time.sleep(0.5)
    stored = system.stored()
    lost = sum(1 for i in accepted if stored[i] == 0)
    duplicated = sum(1 for i in accepted if stored[i] > 1)
    negatives = [i for i, score in accepted.items() if score <= 6]
    alert_of = lambda i: receiver.alerts.get(f"{i[:8]}-{i[8:12]}-{i[12:16]}-{i[16:20]}-{i[20:]}", set())
    missed = sum(1 for i in negatives if len(alert_of(i)) == 0)
    twice = sum(1 for i in negatives if len(alert_of(i)) > 1)
    return dict(scenario=name, sent=len(accepted) + refused[0], accepted=len(accepted), refused=refused[0],
                stored=sum(1 for i in accepted if stored[i] > 0), lost=lost, duplicated=duplicated,
                alerts=len(negatives) - missed, missed=missed, twice=twice)


def fault_at_half(title, s, receiver, fault, seconds=60, settle=0.0):
    """Posts RATINGS ratings to a running system, calls fault() once when half are accepted,
    then checks that every accepted rating arrived once."""
    accepted, refused = {}, [0]
    fired = [False]

    def progress(n):
        if n >= RATINGS // 2 and not fired[0]:
            fired[0] = True
            fault()
    s.post(RATINGS, accepted, refused, on_progress=progress)
    result = check(title, s, receiver, accepted, refused, seconds=seconds)
    time.sleep(settle)
    s.stop()
    return result


def link_down_for_six_seconds(title, s, receiver, link):
    """A quarter of the ratings, the link cut, half of them while it is down (longer than the
    agents' retry backoff), the link healed, the rest; then the check."""
    accepted, refused = {}, [0]
    s.post(RATINGS // 4, accepted, refused)
    link.cut()
    s.post(RATINGS // 2, accepted, refused)
    time.sleep(6)
    link.heal()
    s.post(RATINGS - RATINGS // 4 - RATINGS // 2, accepted, refused)
    result = check(title, s, receiver, accepted, refused, seconds=90)
    s.stop()
    return result


def scenario_hub_kill(receiver):
    s = System("hub-kill", receiver)
    s.write_agent_config()
    s.start_hub(); s.start_agent()

    def kill_and_restart():
        System.kill(s.hub_process)
        threading.Timer(1.0, s.start_hub).start()
    return fault_at_half("SIGKILL hub during load", s, receiver, kill_and_restart, settle=1.5)


def scenario_agent_kill(receiver):
    s = System("agent-kill", receiver)
    s.write_agent_config()
    s.start_hub(); s.start_agent()
    accepted, refused = {}, [0]
    s.post(RATINGS // 2, accepted, refused)
    System.kill(s.agent_process)
    s.start_agent()
    s.post(RATINGS // 2, accepted, refused)
    result = check("SIGKILL agent while sending", s, receiver, accepted, refused)
    s.stop()
    return result


def scenario_hub_down(receiver):
    s = System("hub-down", receiver)
    s.write_agent_config()
    s.start_hub(); s.start_agent()
    System.kill(s.hub_process, signal.SIGTERM)
    accepted, refused = {}, [0]
    s.post(RATINGS, accepted, refused)  # all while the hub is down: the agent buffers
    time.sleep(2)
    s.start_hub()
    result = check("hub down while agents buffer", s, receiver, accepted, refused)
    s.stop()
    return result


def scenario_cut(receiver):
    s = System("cut", receiver)
    s.start_hub()
    proxy = CuttingProxy(s.port)
    s.write_agent_config(hub_address=f"127.0.0.1:{proxy.port}")
    s.start_agent()
    accepted, refused = {}, [0]
    s.post(RATINGS, accepted, refused)
    result = check(f"connections cut mid-frame", s, receiver, accepted, refused, seconds=90)
    result["scenario"] += f" ({proxy.cuts} cuts)"
    proxy.running = False
    s.stop()
    return result


def scenario_full(receiver):
    s = System("spool-full", receiver, quota=max(16 * 1024, RATINGS * 137 // 3))  # room for about a third
    s.write_agent_config()
    s.start_hub(); s.start_agent()
    System.kill(s.hub_process, signal.SIGTERM)  # nothing drains: the spool fills up
    accepted, refused = {}, [0]
    s.post(RATINGS, accepted, refused)
    s.start_hub()
    result = check("spool full (quota): 503, then drains", s, receiver, accepted, refused)
    s.stop()
    return result


def scenario_disk_full(receiver):
    """The spool's own file system fills up (a small tmpfs; needs root to mount it)."""
    # Space comes back a segment at a time, so segments are small next to the disk.
    s = System("disk-full", receiver, segment_bytes=4 * 1024)
    s.write_agent_config()
    spool = f"{s.dir}/agent/spool"
    os.makedirs(spool)
    size = max(12 * 1024, RATINGS * 30)  # about a third of what the ratings take on disk
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", spool],
                                           capture_output=True).returncode != 0:
        return None
    try:
        s.start_hub(); s.start_agent()
        System.kill(s.hub_process, signal.SIGTERM)  # nothing drains: the disk fills up
        accepted, refused = {}, [0]
        s.post(RATINGS, accepted, refused)
        s.start_hub()
        result = check(f"spool disk full (tmpfs {size // 1024} KiB): 503, drains", s, receiver, accepted, refused)
        # Space comes back as batches are acknowledged: the agent takes ratings again.
        more, _ = {}, [0]
        s.post(50, more, [0])
        result["accepted_after"] = len(more)
        if len(more) == 0:
            result["lost"] = max(result["lost"], 1)
            result["scenario"] += " (NOT accepting again)"
        s.stop()
        return result
    finally:
        subprocess.run(["umount", "-l", spool], capture_output=True)


def scenario_corrupt(receiver):
    s = System("corrupt", receiver)
    s.write_agent_config()
    s.start_hub(); s.start_agent()
    System.kill(s.hub_process, signal.SIGTERM)
    accepted, refused = {}, [0]
    s.post(RATINGS // 2, accepted, refused)
    # With no hub the agent seals only full batches; SIGTERM seals the rest before it exits.
    System.kill(s.agent_process, signal.SIGTERM)
    segments = sorted(os.listdir(f"{s.dir}/agent/spool/segments"))
    path = f"{s.dir}/agent/spool/segments/{segments[-1]}"
    with open(path, "r+b") as f:  # damage a record entry near the start (its ratings were sealed later)
        f.seek(120)
        byte = f.read(1)
        f.seek(120)
        f.write(bytes([byte[0] ^ 0xFF]))
    s.start_hub(); s.start_agent()
    result = check("corrupted spool segment", s, receiver, accepted, refused)
    quarantined = os.listdir(f"{s.dir}/agent/spool/quarantine") if os.path.isdir(f"{s.dir}/agent/spool/quarantine") else []
    result["scenario"] += f" ({len(quarantined)} quarantined)"
    s.stop()
    return result


def relayed_system(name, receiver, relay_quota=None):
    """A hub, a branch relay in front of it (through a proxy whose link can be cut), and an
    agent that reaches only the relay."""
    s = System(name, receiver, relay=True, relay_quota=relay_quota)
    s.start_hub()
    s.enroll_agent()  # before the relay connects, so the registry it gets knows the agent
    proxy = GateProxy(s.port)
    s.write_relay_config(hub_address=f"127.0.0.1:{proxy.port}")
    s.start_relay()
    wait_for(lambda: os.path.exists(f"{s.dir}/relay/spool/registry"), 20, "the relay's registry")
    s.write_agent_config(hub_address=s.relay_address)
    s.start_agent()
    return s, proxy


def scenario_relay_kill(receiver):
    s, _ = relayed_system("relay-kill", receiver)

    def kill_and_restart():
        System.kill(s.relay_process)
        threading.Timer(0.5, s.start_relay).start()
    return fault_at_half("relay: SIGKILL relay mid-stream", s, receiver, kill_and_restart, settle=1.0)


def scenario_relay_link_down(receiver):
    # The branch's WAN link goes down.
    s, proxy = relayed_system("relay-link", receiver)
    return link_down_for_six_seconds("relay: relay → hub link down for 6 s", s, receiver, proxy)


def scenario_relay_full(receiver):
    # The relay's spool holds about a third of the outage; the rest waits in the agent's.
    s, proxy = relayed_system("relay-full", receiver, relay_quota=8 * 1024)  # room for a few batches
    proxy.cut()
    accepted, refused = {}, [0]
    s.post(RATINGS, accepted, refused)
    time.sleep(2)
    metrics = get(f"http://127.0.0.1:{s.intake}/metrics").decode()
    retried = sum(int(float(line.split()[-1])) for line in metrics.splitlines() if line.startswith("feedback_agent_batches_retried_total"))
    proxy.heal()
    result = check("relay: quota full in an outage", s, receiver, accepted, refused, seconds=90)
    result["scenario"] += f" ({retried} retried)"
    if retried == 0:  # the relay never filled up: the scenario did not happen
        result["lost"] = max(result["lost"], 1)
        result["scenario"] += " QUOTA NOT REACHED"
    s.stop()
    return result


class ScaleOutSystem(System):
    """Two hubs on one PostgreSQL database (a fresh one on the server faults.sh started), an
    agent listing both. With `db_proxy` the hubs reach the database through a GateProxy, so
    the test can cut that link."""

    def __init__(self, name, receiver, db_proxy=False):
        super().__init__(name, receiver)
        url = urllib.parse.urlsplit(os.environ["FEEDBACK_TEST_POSTGRES_URL"])
        self.pg = dict(host=url.hostname, port=url.port or 5432, user=url.username or "feedback")
        self.database = "faults_" + name.replace("-", "_") + "_" + os.urandom(4).hex()
        self.psql(f"CREATE DATABASE {self.database}", database=url.path.lstrip("/") or "feedback")
        self.db_proxy = GateProxy(self.pg["port"]) if db_proxy else None
        store_port = self.db_proxy.port if self.db_proxy else self.pg["port"]
        store = f'store: "postgres://{self.pg["user"]}@{self.pg["host"]}:{store_port}/{self.database}"\n' \
                "postgres: {passwordEnv: FEEDBACK_TEST_POSTGRES_PASSWORD, poolSize: 6}\n"
        hub1 = f"{self.dir}/hub"
        self.port2, self.http2 = free_port(), free_port()
        os.makedirs(f"{self.dir}/hub2", mode=0o700)
        with open(f"{self.dir}/hub2/hub.yaml", "w") as f:
            f.write(f"hubId: {uuid.uuid4()}\nlisten: \"127.0.0.1:{self.port2}\"\nhttp: \"127.0.0.1:{self.http2}\"\n"
                    f"tls: {{certificate: {hub1}/hub.pem, privateKey: {hub1}/hub-key.pem}}\nalerts: {hub1}/alerts.yaml\n")
        for config in (f"{hub1}/hub.yaml", f"{self.dir}/hub2/hub.yaml"):
            with open(config) as f:
                lines = [line for line in f.read().splitlines() if not line.startswith("store:")]
            with open(config, "w") as f:
                f.write("\n".join(lines) + "\n" + store)
        # A delivery the killed hub had claimed goes out from the other one when its lease
        # ends (2 x timeout + 5 s): a short timeout keeps that within the check's wait.
        with open(f"{hub1}/alerts.yaml") as f:
            rules = f.read().replace("delivery: {firstRetry: 100ms, maxRetry: 1s}", "delivery: {firstRetry: 100ms, maxRetry: 1s, timeout: 2s}")
        with open(f"{hub1}/alerts.yaml", "w") as f:
            f.write(rules)
        # The token System made went into the SQLite file `init` left: make one in the database.
        self.token = subprocess.run([f"{BIN}/feedback-hub", "agents", "token", "--config", f"{hub1}/hub.yaml", "--site", "faults"],
                                    check=True, capture_output=True, text=True).stdout.strip()
        self.hub2_process = None

    def psql(self, query, database=None):
        environment = dict(os.environ, PGPASSWORD=os.environ["FEEDBACK_TEST_POSTGRES_PASSWORD"])
        return subprocess.run([f"{os.environ['FEEDBACK_TEST_POSTGRES_BIN']}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               "-h", self.pg["host"], "-p", str(self.pg["port"]), "-U", self.pg["user"], "-d", database or self.database,
                               "-c", query], check=True, capture_output=True, text=True, env=environment, timeout=60).stdout

    def write_agent_config(self, hub_address=None):
        super().write_agent_config(hub_address=f'{self.hub_address}", "127.0.0.1:{self.port2}')

    def start_hub(self):
        super().start_hub()
        self.start_hub2()

    def start_hub2(self):
        self.hub2_process = self.launch("hub2", "feedback-hub serve", "hub2/hub.yaml", f"{self.http2}/readyz")

    def stop(self):
        super().stop()
        self.kill(self.hub2_process, signal.SIGTERM)
        if self.db_proxy:
            self.db_proxy.close()
        try:
            self.psql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)", database="postgres")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            print(f"  could not drop {self.database}: {error}", file=sys.stderr)

    def stored(self):
        return collections.Counter(line.replace("-", "") for line in self.psql("SELECT id::text FROM records").split())


def scenario_scaleout_hub_kill(receiver):
    s = ScaleOutSystem("scaleout-kill", receiver)
    s.write_agent_config()
    s.start_hub(); s.start_agent()
    # The agent fails over to hub 2; hub 1 stays down.
    return fault_at_half("2 hubs on PostgreSQL: SIGKILL hub 1", s, receiver, lambda: System.kill(s.hub_process))


def scenario_scaleout_db_restart(receiver):
    s = ScaleOutSystem("scaleout-restart", receiver)
    s.write_agent_config()
    s.start_hub(); s.start_agent()
    restart = ["/bin/sh", f"{os.environ['FEEDBACK_TEST_POSTGRES_DIR']}/restart.sh"]

    def restart_in_background():
        threading.Thread(target=lambda: subprocess.run(restart, capture_output=True, timeout=120)).start()
    return fault_at_half("2 hubs on PostgreSQL: database restart", s, receiver, restart_in_background, seconds=90)


def scenario_scaleout_db_link_down(receiver):
    # Both hubs lose the database: not ready, batches refused as retryable.
    s = ScaleOutSystem("scaleout-link", receiver, db_proxy=True)
    s.write_agent_config()
    s.start_hub(); s.start_agent()
    return link_down_for_six_seconds("2 hubs on PostgreSQL: DB link down 6 s", s, receiver, s.db_proxy)


def main():
    receiver = Receiver()
    scenarios = [scenario_hub_kill, scenario_agent_kill, scenario_hub_down, scenario_cut, scenario_full, scenario_disk_full,
                 scenario_corrupt, scenario_relay_kill, scenario_relay_link_down, scenario_relay_full,
                 scenario_scaleout_hub_kill, scenario_scaleout_db_restart, scenario_scaleout_db_link_down]
    only = os.environ.get("ONLY", "")
    scenarios = [scenario for scenario in scenarios if only in scenario.__name__]
    results = []
    started = time.time()
    for scenario in scenarios:
        print(f"== {scenario.__name__[9:].replace('_', ' ')}", flush=True)
        try:
            result = scenario(receiver)
            if result is None:
                print("   skipped: mounting a small tmpfs needs root", flush=True)
            else:
                results.append(result)
        except Exception as error:
            results.append(dict(scenario=f"{scenario.__name__}: ERROR {error}", sent=0, accepted=0, refused=0, stored=0,
                                lost=-1, duplicated=-1, alerts=0, missed=-1, twice=-1))
    print()
    header = f"{'scenario':<44} {'sent':>6} {'accepted':>8} {'stored':>7} {'lost':>5} {'dup':>4} {'alerts':>6} {'missed':>6} {'twice':>5}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['scenario']:<44} {r['sent']:>6} {r['accepted']:>8} {r['stored']:>7} {r['lost']:>5} {r['duplicated']:>4} "
              f"{r['alerts']:>6} {r['missed']:>6} {r['twice']:>5}")
    print(f"\n{len(results)} scenarios in {time.time() - started:.0f} s; {receiver.bad_signatures} webhooks with a bad signature, "
          f"{receiver.torn} cut off by a killed hub")
    failed = [r for r in results if r["lost"] != 0 or r["duplicated"] != 0 or r["missed"] != 0 or r["twice"] != 0 or r["accepted"] == 0]
    if failed or receiver.bad_signatures:
        print(f"faults: kept {WORK} (each scenario's hub, agent and relay logs)", file=sys.stderr)
        print("faults: FAILED: " + ", ".join(r["scenario"] for r in failed), file=sys.stderr)
        sys.exit(1)
    shutil.rmtree(WORK, ignore_errors=True)
    print("faults: OK: zero lost, zero duplicated, every negative alerted exactly once")


if __name__ == "__main__":
    main()
