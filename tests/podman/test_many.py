"""Twenty containers at once, each with its own monitor, output and code."""

from concurrent.futures import ThreadPoolExecutor

from podmanworld import IMAGE

N = 20


def test_twenty_concurrent_containers(pw):
    g = pw.gate()
    names = [pw.name("many") for _ in range(N)]

    def start(i):
        script = (f"echo container-{i}-start; echo container-{i}-err >&2; "
                  + g.wait_cmd("go", f"seq 1 {100 + i} | sed 's/^/c{i}-/'; exit {i + 10}"))
        return pw.podman("run", "-d", "--name", names[i], *g.volume, IMAGE,
                         "sh", "-c", script, timeout=120)

    with ThreadPoolExecutor(max_workers=N) as ex:
        results = list(ex.map(start, range(N)))
    for i, (rc, out, err) in enumerate(results):
        assert rc == 0, f"{names[i]}: {err!r}"
    infos = [pw.verify_monitor(n) for n in names]
    assert len({i.conmon_pid for i in infos}) == N, "monitors shared"
    g.open()
    out = pw.ok("wait", *names, timeout=120)
    assert out == "".join(f"{i + 10}\n" for i in range(N)).encode()
    for info in infos:
        pw.assert_monitor_gone(info)

    def logs(i):
        return pw.podman("logs", names[i], timeout=120)

    with ThreadPoolExecutor(max_workers=4) as ex:
        got = list(ex.map(logs, range(N)))
    for i, (rc, out, err) in enumerate(got):
        assert rc == 0, err
        want = f"container-{i}-start\n" + "".join(
            f"c{i}-{k}\n" for k in range(1, 101 + i))
        assert out == want.encode(), names[i]
        assert err == f"container-{i}-err\n".encode()
        assert pw.inspect(names[i], "{{.State.ExitCode}}") == str(i + 10)
