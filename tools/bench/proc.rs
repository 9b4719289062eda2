//! Broker processes and what /proc says about them (CPU time, peak RSS), the
//! machine description, and a child-with-timeout helper.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use serde::Serialize;

use crate::probe;

pub const HOST: &str = "127.0.0.1";

/// utime + stime of a process (all its threads), in seconds.
pub fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf reads a constant; it takes no pointer.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tick = if tick > 0 { tick as f64 } else { 100.0 };
    Some((utime + stime) as f64 / tick)
}

/// utime + stime of the processes still running among `pids`, summed (the
/// nodes of a cluster); None when none runs.
pub fn cpu_seconds_of(pids: &[i32]) -> Option<f64> {
    pids.iter().filter_map(|p| cpu_seconds(*p)).reduce(|a, b| a + b)
}

/// How often `CpuSampler` reads a process's CPU time.
const CPU_SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// Reads the CPU time of processes (summed: a cluster's nodes) every
/// CPU_SAMPLE_INTERVAL on a thread of its own, so that the CPU spent within a window known only afterwards (a load
/// generator's measured window, after its warm-up) can be read back.
pub struct CpuSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<CpuSamples>,
}

impl CpuSampler {
    pub fn start(pids: Vec<i32>) -> CpuSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            loop {
                let last = stopped.load(Ordering::Relaxed);
                if let Some(cpu) = cpu_seconds_of(&pids) {
                    samples.push((unix_ms(), cpu));
                }
                if last {
                    return CpuSamples(samples);
                }
                std::thread::sleep(CPU_SAMPLE_INTERVAL);
            }
        });
        CpuSampler { stop, thread }
    }

    /// Takes a last sample and returns them all.
    pub fn finish(self) -> CpuSamples {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(CpuSamples(Vec::new()))
    }
}

/// (Unix time in ms, CPU seconds so far) pairs, in time order.
pub struct CpuSamples(pub Vec<(f64, f64)>);

impl CpuSamples {
    /// CPU seconds from the first sample to the last.
    pub fn total(&self) -> Option<f64> {
        Some(self.0.last()?.1 - self.0.first()?.1)
    }

    /// CPU seconds between two Unix times (ms), interpolated linearly between
    /// samples; None unless the samples cover the window.
    pub fn between(&self, from_ms: f64, to_ms: f64) -> Option<f64> {
        Some(self.at(to_ms)? - self.at(from_ms)?)
    }

    fn at(&self, t: f64) -> Option<f64> {
        let i = self.0.iter().position(|(ts, _)| *ts >= t)?;
        let (t1, c1) = self.0[i];
        if i == 0 {
            return (t1 == t).then_some(c1);
        }
        let (t0, c0) = self.0[i - 1];
        Some(c0 + (c1 - c0) * (t - t0) / (t1 - t0))
    }
}

fn unix_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
}

/// VmHWM (peak resident set size) in KiB.
pub fn peak_rss_kib(pid: i32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// VmRSS (resident set size now) in KiB.
pub fn rss_kib(pid: i32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: i32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets VmHWM to the current RSS (clear_refs 5), so the next reading is the
/// peak since now. False when not allowed (another user's process).
pub fn reset_peak_rss(pid: i32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// A base port P with P..P+n-1 all free right now.
pub fn free_port_range(n: usize) -> Result<u16> {
    for _ in 0..200 {
        let base = TcpListener::bind((HOST, 0))?.local_addr()?.port();
        if base as usize + n > 65536 {
            continue;
        }
        if (0..n).all(|i| TcpListener::bind((HOST, base + i as u16)).is_ok()) {
            return Ok(base);
        }
    }
    bail!("no free range of {n} ports found")
}

/// How long a corelog broker may take to serve.
const CORELOG_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a broker may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two readiness probes; bounds the error of the start time.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// Removes `dir` and creates it empty.
pub fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// A broker started for one run on a fresh data directory: corelog (`start`)
/// or Apache Kafka (kafka.rs, through `spawn`).
pub struct Broker {
    child: Child,
    name: &'static str,
    pub port: u16,
    pub data_dir: PathBuf,
    log: PathBuf,
    /// From spawn until every listener answered a Metadata request.
    pub start_time: Duration,
}

impl Broker {
    pub fn start(
        corelog: &Path,
        cpus: Option<&str>,
        data_dir: &Path,
        shards: usize,
        extra: &[String],
        log: &Path,
    ) -> Result<Broker> {
        fresh_dir(data_dir)?;
        let port = free_port_range(shards)?;
        let mut cmd = on_cpus(corelog, cpus);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--host", HOST, "--advertised-host", HOST])
            .args(["--port", &port.to_string(), "--shards", &shards.to_string()])
            .args(extra)
            .env("NO_COLOR", "1");
        let listeners: Vec<u16> = (0..shards as u16).map(|s| port + s).collect();
        Broker::spawn("corelog", &mut cmd, &listeners, data_dir, log, CORELOG_READY_TIMEOUT)
    }

    /// Spawns `cmd` with its output going to `log` and waits until each of
    /// `listeners` (the first is the bootstrap port) answers Metadata. The
    /// data directory is removed again when the broker is stopped.
    pub fn spawn(
        name: &'static str,
        cmd: &mut Command,
        listeners: &[u16],
        data_dir: &Path,
        log: &Path,
        timeout: Duration,
    ) -> Result<Broker> {
        let logf = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(logf.try_clone()?).stderr(logf);
        let spawned = Instant::now();
        let child = cmd.spawn().with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let mut b = Broker {
            child,
            name,
            port: listeners[0],
            data_dir: data_dir.to_path_buf(),
            log: log.to_path_buf(),
            start_time: Duration::ZERO,
        };
        b.wait_ready(listeners, spawned + timeout)?;
        b.start_time = spawned.elapsed();
        Ok(b)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn bootstrap(&self) -> String {
        format!("{HOST}:{}", self.port)
    }

    fn wait_ready(&mut self, listeners: &[u16], deadline: Instant) -> Result<()> {
        let mut pending = listeners.to_vec();
        while let Some(&port) = pending.first() {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status} during start-up:\n{}", self.name, tail(&self.log));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("{} did not answer Metadata on port {port} in time:\n{}", self.name, tail(&self.log));
            }
            let addr = SocketAddr::from((HOST.parse::<Ipv4Addr>().unwrap(), port));
            match probe::metadata_brokers(addr, Duration::from_millis(500)) {
                Ok(n) if n > 0 => {
                    pending.remove(0);
                }
                _ => std::thread::sleep(PROBE_INTERVAL),
            }
        }
        Ok(())
    }

    /// SIGTERM, wait for a clean exit (SIGKILL after STOP_TIMEOUT), remove the data directory.
    pub fn stop(mut self) -> Result<ExitStatus> {
        // SAFETY: kill takes no pointer; the pid is our child's, not yet reaped.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let waited = wait_timeout(&mut self.child, STOP_TIMEOUT);
        let _ = std::fs::remove_dir_all(&self.data_dir);
        match waited? {
            Some(s) => Ok(s),
            None => {
                let _ = self.child.kill();
                let s = self.child.wait()?;
                Err(anyhow!("{} did not exit within {STOP_TIMEOUT:?} of SIGTERM ({s})", self.name))
            }
        }
    }
}

/// The exit status, or None when the child is still running after `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a command with stdout and stderr going to `log`.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Result<Child> {
    let f = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))
}

/// Runs a command with stdout and stderr going to `log`; kills it after `timeout`.
pub fn run_logged(cmd: &mut Command, log: &Path, timeout: Duration) -> Result<ExitStatus> {
    let mut child = spawn_logged(cmd, log)?;
    match wait_timeout(&mut child, timeout)? {
        Some(s) => Ok(s),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{:?} did not finish within {timeout:?}", cmd.get_program())
        }
    }
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[derive(Serialize, serde::Deserialize, Clone, Debug, Default)]
pub struct Machine {
    pub nproc: usize,
    pub cpus_online: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_gib: f64,
    pub hostname: String,
    pub date_utc: String,
    pub unix_time: u64,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cpus_online = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
    let unix_time =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Machine {
        nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        cpus_online,
        cpu_model,
        kernel: format!("{} {}", read("/proc/sys/kernel/ostype"), read("/proc/sys/kernel/osrelease")),
        memory_gib: (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        hostname: read("/proc/sys/kernel/hostname"),
        date_utc: utc_string(unix_time),
        unix_time,
    }
}

/// "2025-01-31 12:34:56 UTC".
pub fn utc_string(secs: u64) -> String {
    let at = i64::try_from(secs).ok().and_then(|secs| jiff::Timestamp::from_second(secs).ok());
    match at {
        Some(at) => at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => format!("{secs} s after the epoch"),
    }
}

/// A command for `program`, under `taskset -c CPUS` when CPUs are given
/// (taskset execs the program, so the child's pid is the program's).
pub fn on_cpus(program: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", cpus]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::utc_string(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc_string(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::utc_string(1_735_689_599), "2024-12-31 23:59:59 UTC");
    }

    #[test]
    fn cpu_within_a_window_is_interpolated() {
        let s = super::CpuSamples(vec![(1000.0, 1.0), (1100.0, 1.5), (1200.0, 1.5), (1300.0, 2.5)]);
        assert_eq!(s.total(), Some(1.5));
        assert_eq!(s.between(1000.0, 1300.0), Some(1.5));
        assert_eq!(s.between(1050.0, 1250.0), Some(1.0 - 0.25));
        assert_eq!(s.between(1100.0, 1200.0), Some(0.0));
        // Outside the samples: unknown.
        assert_eq!(s.between(999.0, 1200.0), None);
        assert_eq!(s.between(1000.0, 1301.0), None);
        assert_eq!(super::CpuSamples(Vec::new()).total(), None);
    }

    #[test]
    fn sampler_sees_its_own_process_work() {
        let sampler = super::CpuSampler::start(vec![std::process::id() as i32]);
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let samples = sampler.finish();
        assert!(samples.0.len() >= 3, "{} samples", samples.0.len());
        assert!(samples.total().unwrap() > 0.1, "{:?}", samples.total());
    }

    #[test]
    fn own_process() {
        let pid = std::process::id() as i32;
        assert!(super::cpu_seconds(pid).is_some());
        assert!(super::peak_rss_kib(pid).unwrap() > 0);
    }
}
