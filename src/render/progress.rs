//! Progress as people see it: a live line per function and stage, task and transfer on a
//! terminal (indicatif), plain lines elsewhere.

use super::*;

impl Renderer {
    pub(super) fn progress(&self, progress: &Progress) {
        match progress {
            Progress::Line { level, text } => {
                let shown = match level {
                    Level::Verbose => self.options.verbosity > 0,
                    Level::Info => true,
                    Level::Warning => true,
                };
                if shown {
                    self.line(text);
                }
            }
            Progress::Stage {
                function,
                arch,
                stage,
                state,
                detail,
            } => {
                let key = Key::Function(function.clone(), *arch);
                match state {
                    State::Started => {
                        self.live(key, &format!("{function} ({arch}): {stage}…"), None)
                    }
                    State::Done => {
                        if let Some(detail) = detail {
                            self.line(&format!("✓ {detail}"));
                        }
                        self.set_message(&key, &format!("{function} ({arch}): {stage} done"));
                    }
                    State::Failed | State::Abandoned => self.remove(&key),
                    State::Running => {}
                }
            }
            Progress::Task {
                id,
                message,
                state,
                elapsed_ms,
            } => self.task(*id, message, *state, *elapsed_ms),
            Progress::Transfer {
                id,
                direction,
                digest,
                peer,
                done,
                total,
                state,
            } => {
                let (verb, done_verb) = match direction {
                    Direction::Upload => ("Uploading", "Uploaded"),
                    Direction::Pull => ("Pulling", "Pulled"),
                };
                let key = Key::Transfer(*id);
                match state {
                    State::Started => {
                        let message = format!(
                            "{verb} {} ({:.1} MB) {} {peer}",
                            short(digest),
                            *total as f64 / 1e6,
                            if *direction == Direction::Upload {
                                "to"
                            } else {
                                "from"
                            },
                        );
                        if self.options.progress == ProgressMode::Plain {
                            self.line(&format!("{message}..."));
                        }
                        self.live(key, &message, Some(*total));
                    }
                    State::Running => {
                        if let Ok(bars) = self.bars.lock() {
                            if let Some(bar) = bars.get(&key) {
                                bar.set_position(*done);
                            }
                        }
                    }
                    State::Done => {
                        self.remove(&key);
                        self.line(&format!("✓ {done_verb} {}", short(digest)));
                    }
                    State::Failed => {
                        self.remove(&key);
                        self.line(&format!("✗ {verb} {} failed", short(digest)));
                    }
                    State::Abandoned => self.remove(&key),
                }
            }
        }
    }

    fn task(&self, id: u64, message: &str, state: State, elapsed_ms: u64) {
        let key = Key::Task(id);
        let secs = elapsed_ms as f64 / 1000.0;
        match state {
            State::Started => {
                if self.options.progress == ProgressMode::Plain {
                    self.line(&format!("{message}..."));
                }
                self.live(key, message, None);
            }
            State::Done => {
                self.remove(&key);
                self.line(&format!("✓ {message} ({secs:.1}s)"));
            }
            State::Failed => {
                self.remove(&key);
                self.line(&format!("✗ {message} ({secs:.1}s)"));
            }
            State::Abandoned => self.remove(&key),
            State::Running => {}
        }
    }

    /// Starts (or updates) a live line: a spinner, or a byte bar when `total` is given.
    fn live(&self, key: Key, message: &str, total: Option<u64>) {
        if self.options.progress != ProgressMode::Interactive {
            return;
        }
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        if let Some(bar) = bars.get(&key) {
            bar.set_message(message.to_string());
            return;
        }
        let bar = match total {
            Some(total) => {
                let bar = self.multi.add(ProgressBar::new(total));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar
            }
            None => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }
        };
        bar.set_message(message.to_string());
        bars.insert(key, bar);
    }

    fn set_message(&self, key: &Key, message: &str) {
        if let Ok(bars) = self.bars.lock() {
            if let Some(bar) = bars.get(key) {
                bar.set_message(message.to_string());
            }
        }
    }

    fn remove(&self, key: &Key) {
        if let Ok(mut bars) = self.bars.lock() {
            if let Some(bar) = bars.remove(key) {
                bar.finish_and_clear();
            }
        }
    }
}
