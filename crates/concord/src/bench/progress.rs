//! The progress bar of a bench phase, on stderr, and only when stderr is a terminal (so logs
//! and pipes get the report alone).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::output::note;

/// What the bar's length counts.
#[derive(Debug, Clone, Copy)]
pub enum Span {
    /// A phase that lasts this long.
    Time(Duration),
    /// A phase of this many operations.
    Ops(u64),
}

/// One phase's progress bar. Clones draw the same bar.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
    span: Span,
}

impl Progress {
    /// A bar labelled `label` (e.g. `prefill`) for a phase of `span`.
    pub fn new(label: &'static str, span: Span) -> Self {
        let length = match span {
            Span::Time(duration) => u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            Span::Ops(ops) => ops,
        };
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        let style = ProgressStyle::with_template("{prefix:>8} [{bar:30}] {elapsed_precise} {msg}")
            .expect("the template is valid")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label);
        Progress { bar, span }
    }

    /// Shows `done` operations and `errors` after `elapsed`.
    pub fn update(&self, done: u64, errors: u64, elapsed: Duration) {
        let position = match self.span {
            Span::Time(_) => u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            Span::Ops(_) => done,
        };
        self.bar.set_position(position);
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        self.bar.set_message(format!("{done} ops, {rate:.0} ops/s, {errors} errors"));
    }

    /// Prints a line above the bar (or plainly on stderr when there is no bar).
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            note(line);
        } else {
            self.bar.println(line);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
