//! The live display while a run goes: a bar towards the bound (requests or seconds), and the
//! numbers a person watches — completed, in flight, rate, errors, p99 of the last second.
//! Hidden when disabled or when stderr is not a terminal.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use crate::config::Bounds;
use crate::stats::Recorder;

const REFRESH: Duration = Duration::from_millis(250);

/// The display, redrawn by a task of its own until [`Display::finish`].
#[derive(Debug)]
pub struct Display {
    bar: ProgressBar,
    redraw: JoinHandle<()>,
}

impl Display {
    pub fn start(recorder: Arc<Recorder>, bounds: Bounds, enabled: bool) -> Display {
        let (length, template) = match (bounds.requests, bounds.duration) {
            (Some(requests), _) => (
                requests,
                "{elapsed_precise} {wide_bar} {pos}/{len} requests  {msg}",
            ),
            (None, duration) => (
                duration.map_or(0, |d| d.as_secs()),
                "{elapsed_precise} {wide_bar} {pos}/{len} s  {msg}",
            ),
        };
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(length), target)
            .with_style(ProgressStyle::with_template(template).expect("the templates are valid"));
        let by_requests = bounds.requests.is_some();
        let shown = bar.clone();
        let redraw = tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            loop {
                tick.tick().await;
                let progress = recorder.progress();
                let elapsed = recorder.start().elapsed();
                shown.set_position(if by_requests {
                    progress.completed
                } else {
                    elapsed.as_secs()
                });
                let rate = progress.completed as f64 / elapsed.as_secs_f64().max(1e-3);
                let p99 = progress.recent_p99.map_or_else(
                    || "–".to_owned(),
                    |p99| format!("{:.1} ms", p99.as_secs_f64() * 1e3),
                );
                shown.set_message(format!(
                    "{} done · {} in flight · {rate:.0}/s · {} errors · p99 {p99}",
                    progress.completed,
                    progress.started.saturating_sub(progress.completed),
                    progress.errors,
                ));
            }
        });
        Display { bar, redraw }
    }

    pub fn finish(self) {
        self.redraw.abort();
        self.bar.finish_and_clear();
    }
}
