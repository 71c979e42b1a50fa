//! CPU time a process has used, from `/proc`: what lets a report show a
//! contender that buys its calls per second by burning a core.

/// CPU time a process has used so far (user + system, every thread, those
/// that have exited included), in seconds, from `/proc/PID/stat` (this
/// process when `pid` is `None`); zero where that is not readable.
///
/// Its resolution is the kernel's clock tick (10 ms), which is why the
/// callers measure it over whole cells of hundreds of milliseconds or more.
pub fn process_cpu_seconds(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    std::fs::read_to_string(path).map_or(0.0, |stat| cpu_seconds_in(&stat))
}

/// utime + stime from the text of a `/proc/PID/stat` file.
fn cpu_seconds_in(stat: &str) -> f64 {
    // Fields after the command name (which may hold spaces and brackets),
    // 1-based from the state: utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports in USER_HZ, 100 on every platform Rust targets here.
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_ticks_past_a_command_with_spaces() {
        let stat =
            "4242 (tokio (w) 1) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 3 0 100 0 0";
        assert!((cpu_seconds_in(stat) - 3.25).abs() < 1e-9);
        assert_eq!(cpu_seconds_in("garbage"), 0.0);
    }

    #[test]
    fn this_process_uses_cpu_and_it_only_grows() {
        let before = process_cpu_seconds(None);
        let mut x = 0u64;
        let started = std::time::Instant::now();
        // Spin until the kernel has counted at least a tick or two.
        while process_cpu_seconds(None) < before + 0.02 && started.elapsed().as_secs() < 10 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        assert!(process_cpu_seconds(None) >= before + 0.02);
    }
}
