# Sets the io_uring workers of a running broker to SCHED_FIFO (or not) and
# runs corelog-load at a fixed rate: `python3 sched-fifo-ab.py PAIRS base,fifo [RATE]`.
# Uses the repository's target/release build; see latency-and-durable-experiments.md.
import json, os, subprocess, sys, time, threading, re, shutil
from pathlib import Path
B = Path(__file__).resolve().parents[4] / "target" / "release"
def promote(pid, stop, mode):
    seen = set()
    while not stop.is_set():
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                if tid in seen: continue
                try:
                    comm = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
                except OSError: continue
                if comm.startswith("iou-wrk"):
                    seen.add(tid)
                    try:
                        if mode == "fifo":
                            os.sched_setscheduler(int(tid), os.SCHED_FIFO, os.sched_param(1))
                        elif mode == "nice":
                            os.setpriority(os.PRIO_PROCESS, int(tid), -20)
                    except OSError as e:
                        print("promote failed", e, file=sys.stderr)
        except FileNotFoundError:
            return
        time.sleep(0.005)
    print(mode, "promoted", len(seen), file=sys.stderr)

def run(mode, rate):
    shutil.rmtree("/tmp/schedexp/d", ignore_errors=True)
    log = open("/tmp/schedexp/broker.log", "w")
    b = subprocess.Popen(["taskset", "-c", "0", f"{B}/corelog", "serve", "--data-dir", "/tmp/schedexp/d", "--port", "19092", "--shards", "1"], stdout=log, stderr=subprocess.STDOUT)
    time.sleep(1)
    stop = threading.Event()
    t = threading.Thread(target=promote, args=(b.pid, stop, mode)); t.start()
    subprocess.run(["taskset", "-c", "1", f"{B}/corelog-load", "--bootstrap-server", "127.0.0.1:19092", "--topic", "t", "--record-bytes", "100",
                    "--rate", str(rate), "--consumers", "1", "--duration", "6", "--warmup", "1", "--json", "/tmp/schedexp/load.json", "--quiet"], check=True, capture_output=True)
    stop.set(); t.join()
    b.terminate(); b.wait(); log.close()
    m = re.search(r"produce request time: n=\d+ p50=(\d+)us p99=(\d+)us p99.9=(\d+)us", open("/tmp/schedexp/broker.log").read())
    r = json.load(open("/tmp/schedexp/load.json"))
    a, e = r["produce"]["ack_latency_us"], r["consume"]["e2e_latency_us"]
    print(f"{mode:5} rate={r['produce']['measured']['msgs_per_s']/1e6:.2f}M broker p50/p99/p99.9={m.group(1)}/{m.group(2)}/{m.group(3)}us "
          f"ack p50/p99={a['p50']}/{a['p99']}us e2e p99/p99.99={e['p99']}/{e['p99.99']}us", flush=True)

modes = sys.argv[2].split(",")
for i in range(int(sys.argv[1])):
    for m in modes:
        run(m, int(sys.argv[3]) if len(sys.argv) > 3 else 3300000)
