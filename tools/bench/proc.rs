//! Broker processes and what /proc says about them (CPU time, peak RSS), the
//! machine description, and a child-with-timeout helper.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use serde::Serialize;

const HOST: &str = "127.0.0.1";

/// utime + stime of a process (all its threads), in seconds.
pub fn cpu_seconds(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tick = if tick > 0 { tick as f64 } else { 100.0 };
    Some((utime + stime) as f64 / tick)
}

/// VmHWM (peak resident set size) in KiB.
pub fn peak_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets VmHWM to the current RSS (clear_refs 5), so the next reading is the
/// peak since now. False when not allowed (another user's process).
pub fn reset_peak_rss(pid: i32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// A base port P with P..P+n-1 all free right now.
fn free_port_range(n: usize) -> Result<u16> {
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

/// A corelog broker started for one scenario, on a fresh data directory.
pub struct Broker {
    child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    log: PathBuf,
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
        if data_dir.exists() {
            std::fs::remove_dir_all(data_dir).with_context(|| format!("clearing {}", data_dir.display()))?;
        }
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let port = free_port_range(shards)?;
        let logf = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = on_cpus(corelog, cpus);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--host", HOST, "--advertised-host", HOST])
            .args(["--port", &port.to_string(), "--shards", &shards.to_string()])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(logf.try_clone()?)
            .stderr(logf);
        let child = cmd.spawn().with_context(|| format!("starting {}", corelog.display()))?;
        let mut b = Broker { child, port, data_dir: data_dir.to_path_buf(), log: log.to_path_buf() };
        b.wait_ready(shards, Duration::from_secs(20))?;
        Ok(b)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn bootstrap(&self) -> String {
        format!("{HOST}:{}", self.port)
    }

    fn wait_ready(&mut self, shards: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<u16> = (0..shards as u16).map(|s| self.port + s).collect();
        while let Some(&port) = pending.first() {
            if let Some(status) = self.child.try_wait()? {
                bail!("corelog exited with {status} during start-up:\n{}", tail(&self.log));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("corelog not ready within {timeout:?} (port {port}):\n{}", tail(&self.log));
            }
            let addr = SocketAddr::from((HOST.parse::<Ipv4Addr>().unwrap(), port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                pending.remove(0);
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// SIGTERM, wait up to 20 s for a clean exit (then SIGKILL), remove the data directory.
    pub fn stop(mut self) -> Result<ExitStatus> {
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let status = match wait_timeout(&mut self.child, Duration::from_secs(20))? {
            Some(s) => s,
            None => {
                let _ = self.child.kill();
                let s = self.child.wait()?;
                let _ = std::fs::remove_dir_all(&self.data_dir);
                return Err(anyhow!("corelog did not exit within 20 s of SIGTERM ({s})"));
            }
        };
        let _ = std::fs::remove_dir_all(&self.data_dir);
        Ok(status)
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

/// Runs a command with stdout and stderr going to `log`; kills it after `timeout`.
pub fn run_logged(cmd: &mut Command, log: &Path, timeout: Duration) -> Result<ExitStatus> {
    let f = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
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

/// "2025-01-31 12:34:56 UTC" (civil-from-days, no date crate needed).
pub fn utc_string(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
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
    fn own_process() {
        let pid = std::process::id() as i32;
        assert!(super::cpu_seconds(pid).is_some());
        assert!(super::peak_rss_kib(pid).unwrap() > 0);
    }
}
