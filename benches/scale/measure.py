#!/usr/bin/env python3
"""Memory and start-up of one process for benches/scale/run.sh; prints one JSON line.

  measure.py run CMD...                    run to completion: wall and CPU seconds, peak RSS
                                           (MB), stdout bytes (stdout is counted, not kept)
  measure.py serve URL SETTLE CMD...       start CMD, poll URL until it answers 200: ready
                                           seconds and CPU seconds spent by then; after
                                           SETTLE more seconds RSS and peak
                                           RSS (VmRSS, VmHWM) in MB; then SIGTERM
"""
import json, os, resource, signal, subprocess, sys, time, urllib.request


def status_mb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def run(cmd):
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    size = 0
    while chunk := p.stdout.read(1 << 20):
        size += len(chunk)
    rc = p.wait()
    wall = time.monotonic() - t
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"rc": rc, "seconds": round(wall, 3), "cpu_seconds": round(ru.ru_utime + ru.ru_stime, 3),
            "peak_rss_mb": round(ru.ru_maxrss / 1024, 1), "stdout_bytes": size}


def serve(url, settle, cmd):
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    ready = None
    while ready is None and p.poll() is None and time.monotonic() - t < 600:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    ready = time.monotonic() - t
        except Exception:
            time.sleep(0.02)
    out = {"ready_seconds": None if ready is None else round(ready, 3)}
    if ready is not None:
        # CPU spent up to ready (user + system, all threads): what start-up costs on a busy machine.
        with open(f"/proc/{p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out["cpu_seconds"] = round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    if ready is not None:
        time.sleep(settle)
        out["rss_mb"] = status_mb(p.pid, "VmRSS")
        out["peak_rss_mb"] = status_mb(p.pid, "VmHWM")
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    else:
        out["exited"] = p.returncode
    return out


def main():
    a = sys.argv[1:]
    if a and a[0] == "run" and len(a) > 1:
        print(json.dumps(run(a[1:])))
    elif a and a[0] == "serve" and len(a) > 3:
        print(json.dumps(serve(a[1], float(a[2]), a[3:])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
