#!/usr/bin/python3
"""A real Redis Cluster on 127.0.0.1 for the tests: Debian's redis-server nodes on free ports,
joined by `redis-cli --cluster create`, with the operations a test puts it through (a master
killed and failed over, a slot migrated, possibly held half-way). Usage as a self-test:
redis_cluster.py [--password PW]

Every wait polls a condition with a deadline (harness.eventually), and a wait that fails says
what it last saw, with the tails of every node's log.
"""

import os
import re
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from harness import HOST, Failure, check  # noqa: E402

REDIS_CLI = "/usr/bin/redis-cli"
SLOTS = 16384


def _crc16(data):
    """CRC16-XMODEM, the checksum Redis Cluster takes a key's slot from."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def key_slot(key):
    """The slot of a key (str or bytes), hash tags included: "{user1}.a" is in user1's slot."""
    k = key.encode() if isinstance(key, str) else bytes(key)
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1 : end]
    return _crc16(k) % SLOTS


def _fields(text):
    """{name: value} of an INFO-style reply ("name:value" lines, "#" lines skipped)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


def _ranges_text(ranges):
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


class _NodeDied(Exception):
    """A node exited that no one stopped: waiting longer cannot help."""


class ClusterNode(h.RedisServer):
    """One node of a RedisCluster: a harness.RedisServer with cluster mode on, its cluster bus on
    a free port of its own (--cluster-port), nodes.conf in its directory. start() after kill()
    or stop() brings it back with the same port, directory and node ID."""

    name = "redis-cluster"

    def __init__(self, node_timeout_ms, password=None, args=(), port=None, bus_port=None):
        super().__init__(password=password, port=port)
        self.bus_port = bus_port or h.free_port()
        self.name = f"redis-cluster {HOST}:{self.port}"
        self.args = ["--cluster-enabled", "yes",
                     "--cluster-config-file", os.path.join(self.dir, "nodes.conf"),
                     "--cluster-node-timeout", str(node_timeout_ms),
                     "--cluster-port", str(self.bus_port)]
        if password is not None:
            self.args += ["--requirepass", password, "--masterauth", password]
        self.args += list(args)
        self.down_expected = True  # not started yet
        self._id = None

    def __repr__(self):
        return f"<redis-cluster node {HOST}:{self.port}>"

    @property
    def addr(self):
        return f"{HOST}:{self.port}"

    @property
    def id(self):
        """The node's cluster ID (CLUSTER MYID; kept in nodes.conf across restarts)."""
        if self._id is None:
            self._id = self.command("CLUSTER", "MYID").decode()
        return self._id

    def start(self, timeout=5.0):
        super().start(timeout)
        self.down_expected = False
        return self

    def info(self, section=None):
        """INFO [section] as {name: value} strings."""
        return _fields(self.command(*(["INFO"] + ([section] if section else []))))

    def cluster_info(self):
        return _fields(self.command("CLUSTER", "INFO"))

    def kill(self):
        """SIGKILL, no questions asked (a crash, as far as the cluster can tell)."""
        self.down_expected = True
        super().kill()

    def stop(self):
        """SHUTDOWN NOSAVE, or SIGKILL if that does not end it."""
        self.down_expected = True
        super().stop()


class RedisCluster:
    """A cluster of `masters` masters with replicas_per_master replicas each, every node a
    ClusterNode (args are passed to every redis-server). start() creates the cluster and waits
    until it is whole; stop() ends every node and removes their directories unless keep_logs.

    Redis's defaults are kept, repl-diskless-sync-delay (5 s) among them: a master waits that
    long before the full sync of a new replica (at start, and for a killed node restarted).
    args=("--repl-diskless-sync-delay", "0") takes about 6 s off start().

    Handed to harness's Context.service(), pass keep_logs=True: the runner prints the logs of a
    failed test after stopping its services, and removes them (remove_log) when all passed.
    """

    name = "redis-cluster"

    def __init__(self, masters=3, replicas_per_master=1, node_timeout_ms=2000, password=None,
                 args=(), keep_logs=False):
        check(masters >= 3, "Redis Cluster needs at least 3 masters")
        self.n_masters = masters
        self.replicas_per_master = replicas_per_master
        self.node_timeout_ms = node_timeout_ms
        self.password = password
        self.keep_logs = keep_logs
        self.started = False
        ports = set()
        while len(ports) < 2 * masters * (1 + replicas_per_master):
            ports.add(h.free_port())
        ports = sorted(ports)
        self.nodes = [ClusterNode(node_timeout_ms, password, args, port=ports[2 * i],
                                  bus_port=ports[2 * i + 1]) for i in range(len(ports) // 2)]
        self._by_port = {n.port: n for n in self.nodes}
        self._by_id = {}
        # What wait_settled saw last: {master port: (slot ranges, [replica ports])}.
        self.layout = {}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout=30.0):
        """Starts the nodes, runs `redis-cli --cluster create` and waits (at most timeout
        seconds in all) until the cluster is whole (see _check_settled) with each master's
        replicas. Returns self; on failure the nodes are killed (their directories stay, for a
        look)."""
        deadline = time.monotonic() + timeout
        try:
            for n in self.nodes:
                n.start(timeout=max(1.0, deadline - time.monotonic()))
            cmd = [REDIS_CLI, "--cluster", "create"] + [n.addr for n in self.nodes]
            cmd += ["--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"]
            if self.password is not None:
                cmd += ["-a", self.password, "--no-auth-warning"]
            try:
                p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                   timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired as e:
                out = (e.stdout or b"") + (e.stderr or b"")
                raise Failure(f"redis-cli --cluster create still running after {timeout} s:\n"
                              + out.decode("utf-8", "replace") + "\n" + self.logs_tail())
            out = (p.stdout + p.stderr).decode("utf-8", "replace")
            if p.returncode != 0 or "[OK] All 16384 slots covered" not in out:
                raise Failure(f"redis-cli --cluster create exited with status {p.returncode}:\n"
                              + out + "\n" + self.logs_tail())
            self.create_output = out
            for n in self.nodes:
                self._by_id[n.id] = n
            self.started = True

            def whole():
                _, masters = self._check_settled()
                check(len(masters) == self.n_masters,
                      f"{len(masters)} masters serve slots, not {self.n_masters}")
                for port, (ranges, replicas) in masters.items():
                    check(len(replicas) == self.replicas_per_master,
                          f"master {port} has replicas {replicas}, not "
                          f"{self.replicas_per_master}")
                self.layout = masters

            self._wait("the new cluster to be whole", whole, deadline - time.monotonic())
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self):
        """Ends every node (SHUTDOWN NOSAVE, else SIGKILL); removes their directories unless
        keep_logs."""
        errors = []
        for n in self.nodes:
            try:
                n.stop()
            except Exception as e:  # noqa: BLE001 -- stop the others anyway
                errors.append(f"{n}: {e}")
            finally:
                n.kill()
        if not self.keep_logs:
            self.remove_log()
        check(not errors, "stopping the cluster: " + "; ".join(errors))

    def kill(self):
        for n in self.nodes:
            n.kill()

    def alive(self):
        return any(n.alive() for n in self.nodes)

    def remove_log(self):
        for n in self.nodes:
            n.remove_log()

    def __enter__(self):
        if not self.started:
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
            return
        self.keep_logs = True  # a failure leaves the directories for a look
        try:
            self.stop()
        except Exception:  # noqa: BLE001 -- the error that ended the block matters more
            pass

    # -- logs ----------------------------------------------------------------------------------

    @property
    def log_path(self):
        """The first node's log (harness's runner prints log_tail() unless a message has it)."""
        return self.nodes[0].log_path

    def logs_tail(self, lines=20):
        """The last lines of every node's log, each labelled with its address."""
        return "\n".join(n.log_tail(lines) for n in self.nodes)

    def log_tail(self, lines=20):
        return self.logs_tail(lines)

    # -- what the cluster looks like -----------------------------------------------------------

    def url(self, scheme="redis+cluster", nodes=None):
        """scheme://[:password@]host:port,... of nodes (default: the masters serving slots)."""
        nodes = self.masters() if nodes is None else nodes
        cred = ""
        if self.password is not None:
            cred = ":" + urllib.parse.quote(self.password, safe="") + "@"
        return f"{scheme}://{cred}" + ",".join(n.addr for n in nodes)

    def node(self, port_or_id):
        """The node with this port or cluster ID."""
        n = self._by_port.get(port_or_id) or self._by_id.get(port_or_id)
        check(n is not None, f"no node of this cluster has port or ID {port_or_id!r}")
        return n

    def _live(self):
        return [n for n in self.nodes if n.alive()]

    def _viewer(self):
        """A live node that answers, to ask for the cluster's view."""
        for n in self._live():
            try:
                n.command("PING", timeout=2.0)
                return n
            except (OSError, h.Closed, h.RedisError):
                continue
        raise Failure("no node of the cluster answers\n" + self.logs_tail())

    def _slot_map(self, node):
        """CLUSTER SLOTS of node as sorted, merged [(first, last, master port)]."""
        entries = sorted((int(e[0]), int(e[1]), int(e[2][1]))
                         for e in node.command("CLUSTER", "SLOTS", timeout=2.0))
        merged = []
        for a, b, port in entries:
            if merged and merged[-1][2] == port and merged[-1][1] + 1 == a:
                merged[-1] = (merged[-1][0], b, port)
            else:
                merged.append((a, b, port))
        return merged

    def cluster_nodes(self, node=None):
        """CLUSTER NODES of node (default: a live one) as a list of dicts: id, port, flags (a
        set: myself, master, slave, fail?, fail, ...), master (its master's ID or None), link,
        ranges [(first, last)] of the slots it serves, and the slots it is migrating or
        importing ({slot: node ID}, shown only by the node doing it)."""
        node = node or self._viewer()
        out = []
        for line in node.command("CLUSTER", "NODES", timeout=2.0).decode().splitlines():
            p = line.split()
            if len(p) < 8:
                continue
            addr = p[1].split("@")[0].split(",")[0]
            e = {"id": p[0], "port": int(addr.rsplit(":", 1)[1] or 0),
                 "flags": set(p[2].split(",")), "master": None if p[3] == "-" else p[3],
                 "link": p[7], "ranges": [], "migrating": {}, "importing": {}}
            for s in p[8:]:
                if s.startswith("["):
                    slot, arrow, other = s[1:-1].partition("->-")
                    if arrow:
                        e["migrating"][int(slot)] = other
                    else:
                        slot, _, other = s[1:-1].partition("-<-")
                        e["importing"][int(slot)] = other
                elif "-" in s:
                    a, b = s.split("-")
                    e["ranges"].append((int(a), int(b)))
                else:
                    e["ranges"].append((int(s), int(s)))
            out.append(e)
        return out

    def masters(self):
        """The nodes serving slots, as a live node sees them (CLUSTER SLOTS), in self.nodes'
        order."""
        ports = {port for _, _, port in self._slot_map(self._viewer())}
        return [n for n in self.nodes if n.port in ports]

    def replicas_of(self, master):
        """The nodes replicating master, as a live node sees them (CLUSTER NODES); a replica
        killed but not yet forgotten stays in the list (check alive())."""
        ids = {e["id"] for e in self.cluster_nodes()
               if "slave" in e["flags"] and e["master"] == master.id}
        return [n for n in self.nodes if n.id in ids]

    def slot_owner(self, slot):
        """The node serving slot, as a live node sees it."""
        for a, b, port in self._slot_map(self._viewer()):
            if a <= slot <= b:
                return self.node(port)
        raise Failure(f"no node serves slot {slot}")

    def key_owner(self, key):
        return self.slot_owner(key_slot(key))

    # -- waiting -------------------------------------------------------------------------------

    def _ask(self, node, *args):
        """node.command(*args), a connection failure or error reply made a Failure (for
        eventually)."""
        try:
            return node.command(*args, timeout=2.0)
        except (OSError, h.Closed, h.RedisError) as e:
            raise Failure(f"{node.addr}: {' '.join(map(str, args))}: {type(e).__name__}: {e}")

    def _wait(self, what, fn, timeout):
        try:
            return h.eventually(lambda: self._alive_or_die(fn), max(0.0, timeout), 0.05)
        except _NodeDied as e:
            raise Failure(f"waiting for {what}: {e}\n" + self.logs_tail(40))
        except Failure as e:
            raise Failure(f"waiting for {what}: not within {timeout:.1f} s; last: {e}\n"
                          + self.logs_tail())

    def _alive_or_die(self, fn):
        for n in self.nodes:
            if not n.down_expected and not n.alive():
                raise _NodeDied(f"node {n.addr} exited with status {n.proc.returncode}")
        return fn()

    def _check_settled(self):
        """Raises Failure unless every live node says cluster_state:ok, all of them see the same
        master for each slot and the same roles (who replicates whom) of the live nodes, none
        of them has a live node flagged failing, every slot is served by a live node, and every
        live replica's link to its master is up on both ends. Returns the slot map (see
        _slot_map) and the layout (see self.layout)."""
        live = self._live()
        check(live, "no node is running")
        maps = {}
        for n in live:
            state = _fields(self._ask(n, "CLUSTER", "INFO")).get("cluster_state")
            check(state == "ok", f"{n.addr} says cluster_state:{state}")
            try:
                maps[n] = self._slot_map(n)
            except (OSError, h.Closed, h.RedisError) as e:
                raise Failure(f"{n.addr}: CLUSTER SLOTS: {e}")
        first = live[0]
        ref = maps[first]
        for n, m in maps.items():
            check(m == ref, f"{n.addr} and {first.addr} disagree on the slots: "
                  f"{self._map_text(m)} vs {self._map_text(ref)}")
        nxt = 0
        for a, b, _ in ref:
            check(a == nxt, f"slots {nxt}-{a - 1} are served by no node ({self._map_text(ref)})")
            nxt = b + 1
        check(nxt == SLOTS, f"slots {nxt}-{SLOTS - 1} are served by no node")
        for _, _, port in ref:
            owner = self._by_port.get(port)
            check(owner is not None and owner.alive(),
                  f"slots are still served by {HOST}:{port}, which is down")
        repl = {n: _fields(self._ask(n, "INFO", "replication")) for n in live}
        for n, r in repl.items():
            if r.get("role") != "slave":
                continue
            check(r.get("master_link_status") == "up",
                  f"replica {n.addr}: master_link_status:{r.get('master_link_status')} "
                  f"(master {r.get('master_port')})")
            # The replica says up once it loaded the master's RDB; the master streams it the
            # writes only once it had the replica's first REPLCONF ACK (state=online).
            master = self._by_port.get(int(r.get("master_port", 0)))
            check(master in repl, f"replica {n.addr} replicates {r.get('master_port')}, "
                  "which is down")
            states = [dict(kv.split("=", 1) for kv in v.split(","))
                      for k, v in repl[master].items() if re.fullmatch(r"slave\d+", k)]
            state = next((x.get("state") for x in states if x.get("port") == str(n.port)), None)
            check(state == "online", f"master {master.addr} has replica {n.addr} in state "
                  f"{state}, not online")
        roles = {}
        for n in live:
            try:
                view = self.cluster_nodes(n)
            except (OSError, h.Closed, h.RedisError) as e:
                raise Failure(f"{n.addr}: CLUSTER NODES: {e}")
            port_of = {e["id"]: e["port"] for e in view}
            seen = {}
            for e in view:
                other = self._by_port.get(e["port"])
                if other is not None and not other.alive():
                    continue  # a node down may or may not be flagged yet
                bad = e["flags"] & {"fail", "fail?", "handshake", "noaddr"}
                check(not bad, f"{n.addr} sees {HOST}:{e['port']} as {','.join(sorted(bad))}")
                seen[e["port"]] = ("replica of", port_of.get(e["master"])) if e["master"] \
                    else ("master",)
            roles[n] = seen
            check(seen == roles[first], f"{n.addr} and {first.addr} disagree on the roles: "
                  f"{sorted(seen.items())} vs {sorted(roles[first].items())}")
        view = {e["id"]: e for e in self.cluster_nodes(first)}
        layout = {}
        for e in view.values():
            if e["ranges"] and "master" in e["flags"]:
                layout[e["port"]] = (e["ranges"], sorted(
                    r["port"] for r in view.values()
                    if "slave" in r["flags"] and r["master"] == e["id"]))
        return ref, layout

    @staticmethod
    def _map_text(m):
        return " ".join(f"{a}-{b}:{port}" for a, b, port in m)

    def wait_settled(self, timeout=30.0):
        """Waits until the cluster is whole again (see _check_settled): after a node is
        restarted, say. Returns the seconds it took."""
        t0 = time.monotonic()

        def settled():
            self.layout = self._check_settled()[1]

        self._wait("the cluster to settle", settled, timeout)
        return time.monotonic() - t0

    # -- failover ------------------------------------------------------------------------------

    def kill_master(self, master, timeout=30.0):
        """SIGKILLs master (a node serving slots) and waits for a replica to take its slots
        over (wait_failover). Returns the new master."""
        self.wait_settled(timeout)  # the layout wait_failover compares with
        check(master.port in self.layout, f"{master.addr} serves no slots")
        master.kill()
        return self.wait_failover(master, timeout)

    def wait_failover(self, old_master, timeout=30.0):
        """After old_master was killed: waits until one of its replicas (when last seen
        settled) serves all of its slots and the cluster is whole again (every live node
        cluster_state:ok and agreeing on every slot's master). Returns the new master."""
        check(old_master.port in self.layout,
              f"{old_master.addr} served no slots when the cluster was last seen whole "
              f"({self.layout})")
        ranges, replicas = self.layout[old_master.port]
        check(any(self.node(p).alive() for p in replicas),
              f"{old_master.addr} has no live replica to fail over to (replicas {replicas})")

        def took_over():
            slot_map, layout = self._check_settled()
            owners = {port for a, b, port in slot_map for r in ranges
                      if a <= r[1] and r[0] <= b}
            check(len(owners) == 1, f"the slots of {old_master.addr} ({_ranges_text(ranges)}) "
                  f"are served by {sorted(owners)}")
            new = self.node(owners.pop())
            check(new.port in replicas, f"{new.addr} serves the slots of {old_master.addr}, "
                  f"but was not its replica ({replicas})")
            check(new.info("replication").get("role") == "master",
                  f"{new.addr} does not say role:master yet")
            self.layout = layout
            return new

        return self._wait(f"a replica of {old_master.addr} to take its slots over", took_over,
                          timeout)

    # -- slot migration ------------------------------------------------------------------------

    def migrate_slot_begin(self, slot, dest):
        """Sets slot IMPORTING on dest, then MIGRATING on its owner; the keys stay where they
        are (move_keys moves them). Returns the owner (the source)."""
        src = self.slot_owner(slot)
        check(src is not dest, f"slot {slot} is already served by {dest.addr}")
        check(dest.info("replication").get("role") == "master", f"{dest.addr} is not a master")
        dest.command("CLUSTER", "SETSLOT", slot, "IMPORTING", src.id)
        src.command("CLUSTER", "SETSLOT", slot, "MIGRATING", dest.id)
        return src

    def move_keys(self, slot, dest, limit=None, batch=100):
        """MIGRATEs keys of slot (at most limit, default all) from its owner to dest, batch at
        a time; the slot must be migrating (migrate_slot_begin). Returns how many moved."""
        src = self.slot_owner(slot)
        moved = 0
        auth = ["AUTH", self.password] if self.password is not None else []
        with src.client() as c:
            while limit is None or moved < limit:
                n = batch if limit is None else min(batch, limit - moved)
                keys = c.command("CLUSTER", "GETKEYSINSLOT", slot, n)
                if not keys:
                    break
                try:
                    c.command("MIGRATE", HOST, dest.port, "", 0, 5000, *auth, "KEYS", *keys)
                except h.RedisError as e:
                    raise Failure(f"MIGRATE of {len(keys)} keys of slot {slot} from {src.addr} "
                                  f"to {dest.addr}: {e}\n" + self.logs_tail())
                moved += len(keys)
        return moved

    def migrate_slot_finish(self, slot, dest, timeout=10.0):
        """Moves the slot's remaining keys to dest, assigns the slot to dest (CLUSTER SETSLOT
        NODE on dest, then the source, then every other live master) and waits until every live
        node sees dest serving it."""
        src = self.slot_owner(slot)
        others = [m for m in self.masters() if m is not src and m is not dest and m.alive()]
        for attempt in range(10):
            self.move_keys(slot, dest)
            dest.command("CLUSTER", "SETSLOT", slot, "NODE", dest.id)
            try:
                src.command("CLUSTER", "SETSLOT", slot, "NODE", dest.id)
                break
            except h.RedisError as e:
                # A key written meanwhile (keys that exist are still served by the source).
                if "still hold keys" not in str(e) or attempt == 9:
                    raise Failure(f"CLUSTER SETSLOT {slot} NODE on {src.addr}: {e}")
        for m in others:
            m.command("CLUSTER", "SETSLOT", slot, "NODE", dest.id)

        def moved():
            slot_map, layout = self._check_settled()
            owner = next(port for a, b, port in slot_map if a <= slot <= b)
            check(owner == dest.port, f"slot {slot} is still served by {HOST}:{owner}")
            self.layout = layout

        self._wait(f"every node to see slot {slot} on {dest.addr}", moved, timeout)

    def migrate_slot(self, slot, dest, timeout=10.0):
        """Moves slot and its keys to dest (a master), the way redis-cli --cluster reshard does.
        Returns the node that served it before."""
        src = self.migrate_slot_begin(slot, dest)
        self.migrate_slot_finish(slot, dest, timeout)
        return src


# ---------------------------------------------------------------------------------------------
# Self-test


def _expect_error(fn, prefix, what):
    try:
        got = fn()
    except h.RedisError as e:
        check(str(e).startswith(prefix), f"{what}: expected an error {prefix!r}, got {e}")
        return str(e)
    raise Failure(f"{what}: expected an error {prefix!r}, got {got!r}")


def _self_test(password):
    t_all = time.monotonic()
    c = RedisCluster(masters=3, replicas_per_master=1, password=password)
    try:
        _exercise(c, password)
    except Exception as e:
        if c.log_path not in str(e):  # the waits' messages have the logs already
            print(c.logs_tail(30), flush=True)
        raise
    print(f"self-test passed in {time.monotonic() - t_all:.1f} s")


def _exercise(c, password):
    t0 = time.monotonic()
    with c.start():
        print(f"started {len(c.nodes)} nodes in {time.monotonic() - t0:.2f} s: {c.url()}")
        for m in c.masters():
            ranges, replicas = c.layout[m.port]
            print(f"  master {m.addr} slots {_ranges_text(ranges)} replicas "
                  f"{[r.addr for r in c.replicas_of(m)]}")

        # Keys written on their owners, one through redis-cli -c from a node that does not own it.
        keys = {f"key:{i}": f"value {i}" for i in range(8)}
        for k, v in keys.items():
            slot = key_slot(k)
            h.eq(c.nodes[0].command("CLUSTER", "KEYSLOT", k), slot, f"slot of {k}")
            h.eq(c.slot_owner(slot).command("SET", k, v), "OK", f"SET {k}")
        other = next(n for n in c.nodes if n is not c.key_owner("via-cli"))
        cli = [REDIS_CLI, "-c", "-p", str(other.port)]
        if password is not None:
            cli += ["-a", password, "--no-auth-warning"]
        p = subprocess.run(cli + ["SET", "via-cli", "yes"], capture_output=True, timeout=10)
        h.eq(p.stdout.strip(), b"OK", f"redis-cli -c SET ({p.stderr!r})")
        h.eq(c.key_owner("via-cli").command("GET", "via-cli"), b"yes", "GET via-cli at its owner")

        # A slot with a key moved to another master in one go.
        k = "key:0"
        slot = key_slot(k)
        src = c.slot_owner(slot)
        dest = next(m for m in c.masters() if m is not src)
        t0 = time.monotonic()
        c.migrate_slot(slot, dest)
        print(f"migrated slot {slot} ({k}) from {src.addr} to {dest.addr} in "
              f"{time.monotonic() - t0:.2f} s")
        h.eq(dest.command("GET", k), keys[k].encode(), f"GET {k} at the new owner")
        _expect_error(lambda: src.command("GET", k), f"MOVED {slot} {dest.addr}",
                      f"GET {k} at the old owner")
        h.eq(c.slot_owner(slot), dest, f"owner of slot {slot}")

        # Another slot held half-way: the source answers ASK for keys it no longer has.
        k2 = next(x for x in keys if key_slot(x) != slot and c.key_owner(x) is not dest)
        slot2 = key_slot(k2)
        src2 = c.migrate_slot_begin(slot2, dest)
        h.eq(src2.command("GET", k2), keys[k2].encode(), f"GET {k2} at the migrating source")
        missing = "{" + k2 + "}missing"
        _expect_error(lambda: src2.command("GET", missing), f"ASK {slot2} {dest.addr}",
                      "GET of a missing key at the migrating source")
        _expect_error(lambda: dest.command("GET", k2), f"MOVED {slot2} {src2.addr}",
                      "GET at the importing node without ASKING")
        h.eq(c.move_keys(slot2, dest), 1, f"keys moved from slot {slot2}")
        _expect_error(lambda: src2.command("GET", k2), f"ASK {slot2} {dest.addr}",
                      f"GET {k2} at the source once moved")
        with dest.client() as conn:
            h.eq(conn.command("ASKING"), "OK", "ASKING")
            h.eq(conn.command("GET", k2), keys[k2].encode(), f"GET {k2} after ASKING")
        c.migrate_slot_finish(slot2, dest)
        h.eq(dest.command("GET", k2), keys[k2].encode(), f"GET {k2} once the slot moved")

        # The master with both slots killed: its replica takes over, with the keys. (WAIT
        # counts the replicas that have the connection's last write: on a new one, any.)
        with dest.client() as conn:
            h.eq(conn.command("SET", k, keys[k]), "OK", f"SET {k} again")
            h.eq(conn.command("WAIT", 1, 5000), 1, "replicas that acknowledged the writes")
        t0 = time.monotonic()
        new = c.kill_master(dest)
        print(f"killed master {dest.addr}: {new.addr} took over in "
              f"{time.monotonic() - t0:.2f} s (cluster-node-timeout {c.node_timeout_ms} ms)")
        for key in (k, k2):
            h.eq(new.command("GET", key), keys[key].encode(), f"GET {key} at the new master")
        h.eq(c.slot_owner(slot), new, f"owner of slot {slot} after the failover")

        # The old master restarted: it comes back as its successor's replica.
        t0 = time.monotonic()
        dest.start()
        c.wait_settled()
        check(dest in c.replicas_of(new), f"{dest.addr} is not a replica of {new.addr}")
        print(f"restarted {dest.addr}: a replica of {new.addr} in {time.monotonic() - t0:.2f} s")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--password")
    _self_test(ap.parse_args().password)
