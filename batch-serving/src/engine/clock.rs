//! Keeping tokio's paused clock honest in tests: time must not jump while a
//! synchronous batch runs on a thread the runtime cannot see.

/// With feature `test-util`: a blocking task that lives as long as a
/// synchronous batch runs. tokio stops auto-advancing a paused clock while
/// any blocking task runs, which it cannot know about our own threads.
#[cfg(feature = "test-util")]
pub(crate) type ClockHold = Option<std::sync::mpsc::SyncSender<()>>;
#[cfg(not(feature = "test-util"))]
pub(crate) type ClockHold = ();

/// Starts holding the clock (only for batches that run off the runtime).
#[cfg(feature = "test-util")]
pub(crate) fn hold_clock(off_runtime: bool) -> ClockHold {
    off_runtime.then(|| {
        let (hold, released) = std::sync::mpsc::sync_channel::<()>(0);
        tokio::task::spawn_blocking(move || {
            let _ = released.recv();
        });
        hold
    })
}
#[cfg(not(feature = "test-util"))]
pub(crate) fn hold_clock(_off_runtime: bool) -> ClockHold {}
