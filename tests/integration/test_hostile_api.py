"""Hostile and broken peers of the control API (issue 14), with real runc
containers: no crash, bounded memory, and a main loop that never stalls.
The monitor runs with oom_score_adj -1000 beside every container, so each
resource a client can make it hold has a documented limit
(include/ctrmon/control.h):

* a request over the size limit from a client that shut its read side, or
  hung up, does not crash the monitor;
* "wait" calls are capped per connection and dropped with their client;
* connections are capped per uid (accepting pauses, never spins, and
  resumes when one closes), the API keeps descriptors in reserve for the
  monitor's own work, and EMFILE pauses accepting instead of spinning;
* concurrent "exec" calls and API attach clients are capped; a client that
  goes away takes its execs with it;
* the biggest "exec" answer the limits allow is delivered, and a larger
  output_limit is refused;
* attach from a client that leaves answers unread never stalls the loop;
* "kill" with "all" runs the runtime asynchronously, bounded by
  --runtime-timeout, a few at once;
* a client that half-closes (`echo ... | nc -U -N`) hears its answers;
* the last answers at the exit never keep the monitor beyond the linger
  bound, and a reading client still gets them;
* at the exit the monitor removes api.sock only if it still is its own."""
import base64
import json
import os
import resource
import socket
import stat
import time

import pytest

from ctrtest import procs
from ctrtest.procs import rss_limit
from ctrtest.control import ControlClient, ControlError, api_socket_path
from ctrtest.wait import wait_for

from conftest import scaled

MiB = 1024 * 1024
MAX_REQUEST = 1 * MiB               # CTRMON_CONTROL_MAX_REQUEST
ERROR_LIMIT = -32006                # CTRMON_CONTROL_ERROR_LIMIT
ERROR_FAILED = -32004
ERROR_INVALID_PARAMS = -32602
MAX_CONN_PER_UID = 64               # CTRMON_CONTROL_MAX_CONNECTIONS_PER_UID
FD_RESERVE = 32                     # CTRMON_CONTROL_FD_RESERVE
MAX_WAITS = 16                      # CTRMON_CONTROL_MAX_WAITS_PER_CONNECTION
MAX_EXECS = 16                      # CTRMON_CONTROL_MAX_EXECS
MAX_ATTACH = 32                     # CTRMON_CONTROL_MAX_ATTACH
MAX_KILLS = 4                       # CTRMON_CONTROL_MAX_KILLS
EXEC_OUTPUT_MAX = 16 * MiB          # CTRMON_EXEC_OUTPUT_LIMIT_MAX
LINGER = 2.0                        # CTRMON_CONTROL_EXIT_LINGER_MS


# -- helpers ------------------------------------------------------------------

def api(m):
    return api_socket_path(m.bundle.path)


def client(m, timeout=10):
    return ControlClient(api(m), timeout=timeout)


def request(rid, method, params=None):
    req = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        req["params"] = params
    return json.dumps(req).encode() + b"\n"


def raw_connect(m, timeout=10):
    """A connection; EAGAIN (the listen backlog is full: the monitor is at
    its connection limit, or behind) is retried as a client would."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(api(m))
            return s
        except BlockingIOError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def read_lines(sock, n, timeout=10):
    """n JSON messages from `sock` (fewer at EOF)."""
    buf, out = b"", []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        while b"\n" in buf and len(out) < n:
            line, buf = buf.split(b"\n", 1)
            out.append(json.loads(line))
        if len(out) >= n:
            break
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return out


def call_big(m, method, params, timeout=50):
    """One call whose answer may be tens of MB: read linearly (a bytearray,
    each chunk searched once), unlike ControlClient's rescanning reader."""
    s = raw_connect(m)
    s.sendall(request(1, method, params))
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(1 << 20)
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} bytes, before the answer ended")
        buf += chunk
        if b"\n" in chunk:
            break
    s.close()
    msg = json.loads(bytes(buf[:buf.index(b"\n")]))
    if "error" in msg:
        raise ControlError(msg["error"]["code"], msg["error"]["message"])
    return msg["result"]


def status(m, timeout=10):
    with client(m, timeout) as c:
        return c.call("status", timeout=timeout)


def wait_running(m, timeout=5):
    wait_for(lambda: status(m)["state"] == "running", scaled(timeout),
             "the container to run")


def cpu_seconds(pid):
    f = procs.stat_fields(pid)   # [0] is state: utime, stime are [11], [12]
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def cpu_over(pid, seconds):
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


def open_fds(pid):
    return [int(n) for n in os.listdir(f"/proc/{pid}/fd")]


@pytest.fixture
def running(env):
    m = env.monitor(["sleep", "1000"])
    m.run()
    wait_running(m)
    yield m
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file(15)
    m.assert_clean_exit()


def stop(env, m):
    env.runc.kill(m.cid, "KILL")
    m.wait_exit_file(15)


# -- finding 1: "too large" to a client that cannot take the answer -----------

@pytest.mark.parametrize("how", ["shut-read", "hang-up"])
def test_oversize_request_from_a_client_that_cannot_read_the_error_leaves_the_monitor_alive(running, how):
    pid = running.daemon_pid
    big = b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"pad":"' + \
        b"x" * (MAX_REQUEST + 64 * 1024)
    for _ in range(3):
        s = raw_connect(running)
        if how == "shut-read":
            s.shutdown(socket.SHUT_RD)
        try:
            s.sendall(big)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if how == "hang-up":
            s.close()
        time.sleep(0.2)
        assert not procs.is_gone(pid), "the monitor died"
        s.close()
    assert status(running)["state"] == "running"


# -- finding 2: waiters ---------------------------------------------------------

def test_waits_are_capped_per_connection_and_dropped_with_their_client(running):
    s = raw_connect(running)
    s.sendall(b"".join(request(i, "wait") for i in range(1, MAX_WAITS + 5)))
    refused = read_lines(s, 4)
    assert len(refused) == 4
    for r in refused:
        assert r["error"]["code"] == ERROR_LIMIT, r
        assert f"the limit is {MAX_WAITS}" in r["error"]["message"], r
    assert status(running)["waiters"] == MAX_WAITS
    s.close()
    wait_for(lambda: status(running)["waiters"] == 0, scaled(5),
             "the waiters of the closed connection to be dropped")

    # Many clients that wait and vanish cost nothing lasting.
    with client(running) as c:
        rss_before = c.call("stats")["monitor"]["rss_bytes"]
    for _ in range(300):
        s = raw_connect(running)
        s.sendall(b"".join(request(i, "wait") for i in range(MAX_WAITS)))
        s.close()
    wait_for(lambda: status(running)["waiters"] == 0, scaled(10),
             "every waiter to be dropped")
    with client(running) as c:
        rss_after = c.call("stats")["monitor"]["rss_bytes"]
    assert rss_after - rss_before < rss_limit(8 * MiB), (rss_before, rss_after)


def test_a_waiter_still_connected_hears_the_exit(env):
    m = env.monitor(["sleep", "1000"])
    m.run()
    wait_running(m)
    with client(m) as c:
        rid = c.send("wait")
        time.sleep(0.1)
        stop(env, m)
        r = c.wait_response(rid, timeout=10)
    assert r["result"]["exit_code"] == 137 and r["result"]["signal"] == 9
    m.assert_clean_exit()


# -- finding 3: connections and descriptors ---------------------------------------

def test_connections_at_the_per_uid_limit_pause_accepting_without_spinning(running):
    pid = running.daemon_pid
    conns = [raw_connect(running) for _ in range(MAX_CONN_PER_UID)]
    # All of them are served (the loop took them all).
    for i, s in enumerate(conns):
        s.sendall(request(i, "version"))
    for s in conns:
        assert "result" in read_lines(s, 1)[0]
    # One more waits in the listen backlog, unanswered, and costs no CPU.
    extra = raw_connect(running)
    extra.sendall(request(99, "version"))
    assert cpu_over(pid, 1.0) < 0.2
    extra.settimeout(0.3)
    with pytest.raises(socket.timeout):
        extra.recv(1)
    # A connection closes: the waiting one is taken and answered.
    conns.pop().close()
    got = read_lines(extra, 1, timeout=5)
    assert got and got[0]["id"] == 99 and "result" in got[0]
    for s in conns:
        s.close()
    extra.close()
    assert status(running)["state"] == "running"


def test_at_the_fd_limit_accepting_pauses_instead_of_spinning(running):
    # The limit just above the highest descriptor in use (it cannot be
    # lower: poll(2) refuses more fds than RLIMIT_NOFILE). The exact
    # EMFILE case is unit/test-control-api.c.
    pid = running.daemon_pid
    with client(running) as keep:
        keep.call("version")              # accepted before the limit drops
        old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        waiting = []
        try:
            fds = open_fds(pid)
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (max(fds) + 1, old[1]))
            # More clients than free descriptors below the limit.
            holes = max(fds) + 1 - len(fds)
            for i in range(min(holes + 10, MAX_CONN_PER_UID - 4)):
                s = raw_connect(running)
                try:
                    s.sendall(request(i, "version"))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                waiting.append(s)
            used = cpu_over(pid, 1.5)
            assert used < 0.3, f"the monitor used {used:.2f} s of CPU in 1.5 s"
            # The connection it has still works.
            assert keep.call("status")["state"] == "running"
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
        # Every client hears something: its answer, or why it was refused.
        for s in waiting:
            got = read_lines(s, 1, timeout=10)
            assert got, "neither an answer nor an error"
            assert "result" in got[0] or got[0]["error"]["code"] == ERROR_LIMIT, got
            s.close()


LOW_NOFILE = 80


def test_the_fd_reserve_keeps_exec_and_reopen_working_at_the_limit(env):
    """A monitor started with a soft RLIMIT_NOFILE of 80: clients past what
    leaves 32 descriptors free are refused with an error that says why, and
    exec and reopen_log still work. (The limit is set before the start, not
    with prlimit on a running monitor: under memcheck the monitor sees
    valgrind's own view of its limit, fixed at start.)"""
    m = env.monitor(["sleep", "1000"])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_NOFILE, hard))
    try:
        m.run()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    wait_running(m)
    conns = []
    with client(m, timeout=20) as keep:
        try:
            refused = 0
            for i in range(LOW_NOFILE):
                s = raw_connect(m)
                try:
                    s.sendall(request(i, "version"))
                except (BrokenPipeError, ConnectionResetError):
                    pass                  # refused at once: the error is there
                got = read_lines(s, 1, timeout=scaled(5))
                assert got, "neither an answer nor an error"
                if "error" in got[0]:
                    assert got[0]["error"]["code"] == ERROR_LIMIT, got[0]
                    assert "Too many open files" in got[0]["error"]["message"]
                    refused += 1
                    s.close()
                else:
                    conns.append(s)
            assert refused > 0 and len(conns) < LOW_NOFILE - FD_RESERVE, (refused, len(conns))
            assert cpu_over(m.daemon_pid, 0.5) < 0.2
            # The monitor's own work still has descriptors.
            r = keep.call("exec", {"command": ["echo", "still here"]}, timeout=scaled(20))
            assert r["exit_code"] == 0 and r["stdout"] == "still here\n"
            keep.call("reopen_log")
        finally:
            for s in conns:
                s.close()
    stop(env, m)


# -- finding 4: execs and attach clients ----------------------------------------

def test_concurrent_execs_are_capped_and_go_with_their_client(running):
    def sleepers():
        ps = status_processes(running)
        return [p for p in ps if "sleep 37" in p["command"]]

    s = raw_connect(running)
    s.sendall(b"".join(request(i, "exec", {"command": ["sleep", "37"]})
                       for i in range(1, MAX_EXECS + 2)))
    got = read_lines(s, 1, timeout=20)
    assert got[0]["error"]["code"] == ERROR_LIMIT, got
    assert f"the limit is {MAX_EXECS}" in got[0]["error"]["message"]
    wait_for(lambda: len(sleepers()) == MAX_EXECS, scaled(20), "16 execs to run")
    # The client goes: its commands are stopped, the slots free again.
    s.close()
    wait_for(lambda: not sleepers(), scaled(10), "the abandoned execs to be killed")
    with client(running, timeout=20) as c:
        r = c.call("exec", {"command": ["echo", "ok"]}, timeout=20)
    assert r["stdout"] == "ok\n"


def status_processes(m):
    with client(m) as c:
        return c.call("processes")["processes"]


def test_api_attach_clients_are_capped(running):
    streams = []
    try:
        for _ in range(MAX_ATTACH):
            streams.append(client(running).attach())
        with client(running) as c:
            with pytest.raises(ControlError) as e:
                c.call("attach")
        assert e.value.code == ERROR_LIMIT
        assert f"the limit is {MAX_ATTACH}" in e.value.message
        streams.pop().close()

        def can_attach():
            try:
                streams.append(client(running).attach())
                return True
            except ControlError:
                return False
        wait_for(can_attach, scaled(5), "a freed attach slot")
    finally:
        for s in streams:
            s.close()


# -- finding 5: the biggest exec answer -------------------------------------------

def test_exec_output_at_the_limit_is_delivered_in_full(running):
    # NUL bytes are not text: both streams go as base64, the largest
    # answer the limits allow (about 44.7 MB).
    cmd = ["sh", "-c", f"head -c {EXEC_OUTPUT_MAX} /dev/zero; "
                       f"head -c {EXEC_OUTPUT_MAX} /dev/zero >&2"]
    r = call_big(running, "exec", {"command": cmd, "output_limit": EXEC_OUTPUT_MAX})
    assert r["exit_code"] == 0
    assert base64.b64decode(r["stdout_base64"]) == b"\0" * EXEC_OUTPUT_MAX
    assert base64.b64decode(r["stderr_base64"]) == b"\0" * EXEC_OUTPUT_MAX
    assert not r["stdout_truncated"] and not r["stderr_truncated"]


def test_exec_output_of_control_characters_is_delivered_in_full(running):
    # Valid UTF-8 that JSON escapes six-fold (\u0001): sent as base64.
    cmd = ["sh", "-c", f"head -c {EXEC_OUTPUT_MAX} /dev/zero | tr '\\000' '\\001'"]
    r = call_big(running, "exec", {"command": cmd})
    assert r["exit_code"] == 0
    assert base64.b64decode(r["stdout_base64"]) == b"\x01" * EXEC_OUTPUT_MAX


def test_exec_output_limit_over_the_maximum_is_refused(running):
    with client(running) as c:
        with pytest.raises(ControlError) as e:
            c.call("exec", {"command": ["true"], "output_limit": EXEC_OUTPUT_MAX + 1})
    assert e.value.code == ERROR_INVALID_PARAMS
    assert str(EXEC_OUTPUT_MAX) in e.value.message


# -- finding 6: attach from clients that do not read -------------------------------

def test_attach_from_clients_that_leave_answers_unread_never_stalls_the_loop(running):
    hostile = []
    for _ in range(10):
        s = raw_connect(running)
        s.sendall(b"".join(request(i, "status") for i in range(1000)) +
                  request(5000, "attach"))
        hostile.append(s)
    worst = 0.0
    for _ in range(20):
        t0 = time.monotonic()
        status(running, timeout=30)
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.05)
    assert worst < scaled(0.5), f"a status call took {worst:.2f} s"
    # What they get once they read: every answer, then a refusal of the
    # attach (they had answers unread), and the connection goes on.
    got = read_lines(hostile[0], 1001, timeout=20)
    assert len(got) == 1001
    assert got[-1]["id"] == 5000 and got[-1]["error"]["code"] == ERROR_FAILED
    assert "unread" in got[-1]["error"]["message"]
    for s in hostile:
        s.close()


def test_attach_right_after_other_requests_still_works(running):
    with client(running) as c:
        c.call("status")
        with c.attach() as a:
            assert a.result == {"framing": "ctrmon-attach-v1"}


# -- finding 7: kill --all with a hanging runtime -----------------------------------

def hanging_kill_runtime(env):
    """runc, except that `kill --all` hangs (and records its pid)."""
    path = os.path.join(env.work, "runc-kill-hangs")
    pidfile = path + ".pid"
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                "all=; kill=\n"
                'for a; do case "$a" in --all|-a) all=1;; kill) kill=1;; esac; done\n'
                f'if [ -n "$kill" ] && [ -n "$all" ]; then echo $$ > {pidfile}; '
                "exec sleep 1000; fi\n"
                f'exec {env.runc.binary} "$@"\n')
    os.chmod(path, 0o755)
    return path, pidfile


def test_kill_all_with_a_hanging_runtime_never_stalls_and_times_out(env):
    path, pidfile = hanging_kill_runtime(env)
    m = env.monitor(["sleep", "1000"], extra_args=["--runtime-timeout", "2"])
    m.args[m.args.index(env.runc.binary)] = path
    m.run()
    wait_running(m)
    with client(m, timeout=15) as c:
        t0 = time.monotonic()
        rid = c.send("kill", {"signal": "CONT", "all": True})
        # Meanwhile the loop serves everyone else.
        worst = 0.0
        while time.monotonic() - t0 < 1.5:
            t1 = time.monotonic()
            status(m, timeout=10)
            worst = max(worst, time.monotonic() - t1)
            time.sleep(0.05)
        assert worst < scaled(0.5), f"a status call took {worst:.2f} s"
        r = c.wait_response(rid, timeout=15)
        took = time.monotonic() - t0
    assert r["error"]["code"] == ERROR_FAILED, r
    assert "did not finish within 2 s" in r["error"]["message"]
    assert 1.5 < took < scaled(6), took
    with open(pidfile) as f:
        hung = int(f.read())
    wait_for(lambda: procs.is_gone(hung), scaled(5), "the hung runtime to be killed")
    stop(env, m)
    m.assert_clean_exit()


def test_kill_all_calls_at_once_are_capped(env):
    path, _ = hanging_kill_runtime(env)
    m = env.monitor(["sleep", "1000"], extra_args=["--runtime-timeout", "3"])
    m.args[m.args.index(env.runc.binary)] = path
    m.run()
    wait_running(m)
    with client(m, timeout=15) as c:
        rids = [c.send("kill", {"signal": "CONT", "all": True}) for _ in range(MAX_KILLS + 1)]
        last = c.wait_response(rids[-1], timeout=5)
        assert last["error"]["code"] == ERROR_LIMIT, last
        assert f"the limit is {MAX_KILLS}" in last["error"]["message"]
        for rid in rids[:-1]:
            r = c.wait_response(rid, timeout=15)
            assert "did not finish within 3 s" in r["error"]["message"], r
    stop(env, m)
    m.assert_clean_exit()


def test_kill_all_that_ends_the_container_is_still_answered(running):
    with client(running) as c:
        r = c.call("kill", {"signal": "KILL", "all": True}, timeout=15)
    assert r == {"signal": 9, "all": True}
    running.wait_exit_file(15)


# -- finding 8: half-closed clients ---------------------------------------------------

def test_half_closed_client_hears_its_wait_answer(env):
    m = env.monitor(["sleep", "1000"])
    m.run()
    wait_running(m)
    s = raw_connect(m)
    s.sendall(request(1, "wait"))
    s.shutdown(socket.SHUT_WR)          # like `nc -U -N`
    # Kept, and without spinning on the socket's lasting EOF.
    assert cpu_over(m.daemon_pid, 0.5) < 0.1
    assert status(m)["waiters"] == 1
    stop(env, m)
    got = read_lines(s, 2, timeout=10)
    assert len(got) == 1 and got[0]["id"] == 1, got   # the answer, then EOF
    assert got[0]["result"]["exit_code"] == 137
    s.close()
    m.assert_clean_exit()


def test_half_closed_client_hears_its_exec_answer(running):
    s = raw_connect(running)
    s.sendall(request(1, "exec", {"command": ["sh", "-c", "sleep 0.3; echo done"]}))
    s.shutdown(socket.SHUT_WR)
    got = read_lines(s, 2, timeout=15)
    assert len(got) == 1 and got[0]["result"]["stdout"] == "done\n", got
    s.close()


# -- finding 9: the exit with clients that do not read ----------------------------------

def test_exit_with_a_client_that_does_not_read_is_bounded_and_others_hear_it(env):
    m = env.monitor(["sleep", "1000"])
    m.run()
    wait_running(m)
    hog = raw_connect(m)
    hog.sendall(b"".join(request(i, "status") for i in range(2000)) + request(9999, "wait"))
    time.sleep(0.3)
    with client(m) as c:
        rid = c.send("wait")
        time.sleep(0.1)
        stop(env, m)
        t0 = time.monotonic()
        r = c.wait_response(rid, timeout=10)
        assert r["result"]["exit_code"] == 137
    m.wait_gone(timeout=10)
    assert time.monotonic() - t0 < LINGER + scaled(3)
    hog.close()
    m.assert_clean_exit()


# -- the socket at the exit ---------------------------------------------------------------

def test_exit_leaves_a_successors_api_socket_in_place(env):
    m = env.monitor(["sleep", "1000"])
    m.run()
    wait_running(m)
    path = api(m)
    # A successor monitor on the same bundle binds its own socket at the
    # path (it unlinks ours first, as ctrmon does).
    successor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path + ".new"
    successor.bind(tmp)
    successor.listen(1)
    os.rename(tmp, path)
    ino = os.stat(path).st_ino
    stop(env, m)
    m.wait_gone()
    try:
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode) and st.st_ino == ino
    finally:
        successor.close()
        os.unlink(path)
    m.assert_clean_exit()


def test_exit_removes_its_own_api_socket_and_directory(env):
    m = env.monitor(["sleep", "1000"])
    m.run()
    wait_running(m)
    stop(env, m)
    m.wait_gone()
    assert not os.path.lexists(api(m))
    assert not os.path.lexists(os.path.dirname(api(m)))
    m.assert_clean_exit()
