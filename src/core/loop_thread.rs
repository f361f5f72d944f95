//! [`LoopThread`]: an event loop on a background thread, stopped, woken and joined on
//! drop.
//!
//! Demos and tests run a server in the same process as its client: the loop goes to a
//! thread, the client runs, and the loop must then end cleanly (its handler printing
//! totals, sockets closed) before the demo goes on. The stop request belongs to the core:
//! a flag the loop checks before each read and event (rule 9; the [`Waker`] ends a poll
//! that waits), so a handler needs no flag of its own; it hears [`Handler::on_stop`] once
//! and the loop ends there, leaving the rest of that turn undone.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use super::{EventLoop, Handler, Waker};

/// A loop running on its own thread; see the module comment.
pub struct LoopThread<H> {
    stop: Arc<AtomicBool>,
    waker: Waker,
    thread: Option<thread::JoinHandle<io::Result<H>>>,
}

impl<H: Handler + Send + 'static> LoopThread<H> {
    /// Runs `event_loop` with `handler` on a new thread named `name`, until
    /// [`LoopThread::stop`] (or the handler calling [`super::Ctx::stop`]).
    pub fn spawn(name: &str, mut event_loop: EventLoop, mut handler: H) -> io::Result<Self> {
        let stop = Arc::clone(&event_loop.ctx.stop_request);
        let waker = event_loop.ctx.waker();
        let thread = thread::Builder::new()
            .name(name.into())
            .spawn(move || -> io::Result<H> {
                event_loop.run(&mut handler)?;
                Ok(handler)
                // `event_loop` is dropped here: every socket it still holds is closed.
            })?;
        Ok(LoopThread {
            stop,
            waker,
            thread: Some(thread),
        })
    }
}

impl<H> LoopThread<H> {
    /// Asks the loop to stop: it calls [`Handler::on_stop`] and ends there.
    pub fn stop(&self) -> io::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.waker.wake()
    }

    /// Waits for the loop to end (call [`LoopThread::stop`] first unless the handler
    /// stops by itself) and returns its handler.
    pub fn join(mut self) -> io::Result<H> {
        let thread = self.thread.take().expect("joined once");
        thread
            .join()
            .map_err(|_| io::Error::other("event loop thread panicked"))?
    }
}

impl<H> Drop for LoopThread<H> {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.stop();
            let _ = thread.join();
        }
    }
}
