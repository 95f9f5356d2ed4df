//! Results as people read them: each event of a stage's result as lines, on stdout when it is
//! the command's own result (see [`super::RenderOptions::primary`]), else on stderr.

use super::*;

impl Renderer {
    pub(super) fn render_result(&self, event: &Event) {
        match event {
            Event::Plan {
                plan,
                commands: Some(commands),
            } => {
                for command in commands {
                    self.line(&format!("  command: {}", command.display()));
                    if let Some(image) = &command.cross_image {
                        self.line(&format!("  {}", image.display()));
                    }
                }
                for f in &plan.functions {
                    let mut line = format!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        f.name, f.arch, f.target, f.compiler, f.base_image.reference, f.artifact
                    );
                    if !f.extensions.is_empty() {
                        let names: Vec<&str> =
                            f.extensions.iter().map(|e| e.name.as_str()).collect();
                        line.push_str(&format!("\textensions: {}", names.join(", ")));
                    }
                    self.result(Reason::Plan, &line);
                }
            }
            Event::Plan { .. } => {}
            Event::Compiled { artifact } => self.result(Reason::Compiled, &artifact.line()),
            Event::Check { report } => self.check_report(report),
            Event::Image { image, .. } => self.result(Reason::Image, &image.line()),
            Event::Pushed { image } => self.result(Reason::Pushed, &image.line()),
            Event::Index { index } => self.result(Reason::Index, &index.line()),
            Event::Invocation { invocation } => self.invocation(invocation),
            Event::Deployed { deployment: d } => self.deployed(d),
            Event::Planned { deployment } => self.planned(deployment),
            Event::Pruned { pruned } => self.pruned(pruned),
            Event::Doctor { check } => self.result(Reason::Doctor, &check.line()),
            Event::Released { release } => self.released(release),
            Event::Template { path, template, .. } => {
                if let Some(path) = path {
                    self.result(Reason::Template, &path.display().to_string());
                }
                if let (Some(template), false) = (template, self.options.json) {
                    let text = serde_json::to_string_pretty(template).unwrap_or_default();
                    self.stdout(&text);
                }
            }
            Event::New { path, .. } => self.result(Reason::New, &path.display().to_string()),
            Event::EventExample { event, .. } => {
                if !self.options.json {
                    self.stdout(&serde_json::to_string_pretty(event).unwrap_or_default());
                }
            }
            Event::Emulator { invoke_url } => self.result(Reason::Emulator, invoke_url),
            Event::Serving {
                endpoint,
                functions,
            } => self.serving(endpoint, functions),
            Event::Reloaded { function } => {
                self.result(Reason::Reloaded, &function.reloaded_line())
            }
            Event::Invoked { invoked } => self.invoked(invoked),
            Event::Error(error) => self.failure(error),
            Event::Progress(_) => {}
        }
    }

    /// `check`'s own result: every rule of every image, on stdout.
    fn check_report(&self, report: &crate::check::Report) {
        if self.options.json || !self.options.primary.contains(&Reason::Check) {
            return;
        }
        self.stdout(&format!("{} ({})", report.function, report.arch));
        for f in &report.findings {
            let mark = match f.severity {
                Severity::Pass => "✓",
                Severity::Note => "!",
                Severity::Fail => "✗",
            };
            self.stdout(&format!("  {mark} {:<18} {}", f.rule, f.message));
            if f.severity != Severity::Pass {
                self.stdout(&format!("    help: {}", f.help));
            }
        }
    }

    fn pruned(&self, p: &crate::deploy::prune::Pruned) {
        for image in &p.unused {
            let line = format!(
                "{}\t{}\t{}\t{}",
                p.repository,
                image.digest,
                if image.tags.is_empty() {
                    "(untagged)".to_string()
                } else {
                    image.tags.join(",")
                },
                if p.deleted { "deleted" } else { "unused" }
            );
            self.result(Reason::Pruned, &line);
        }
        self.line(&format!(
            "{}: {} image(s) in use, {} unused{}",
            p.repository,
            p.used,
            p.unused.len(),
            if p.deleted || p.unused.is_empty() {
                ""
            } else {
                " (run with --yes to delete them)"
            }
        ));
    }

    fn released(&self, r: &crate::deploy::release::Released) {
        let line = format!(
            "{}\t{}\t{}\t{} -> {}\t{}",
            r.function,
            r.arch,
            r.alias,
            r.from,
            r.to,
            match (r.changed, r.dry_run) {
                (true, false) => "changed",
                (true, true) => "would change (dry run)",
                (false, _) => "unchanged",
            }
        );
        self.result(Reason::Released, &line);
    }

    fn deployed(&self, d: &crate::deploy::DeployedFunction) {
        let mut line = format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            d.function,
            d.arch,
            d.arn,
            d.version.as_deref().unwrap_or("$LATEST"),
            d.digest,
            if d.changed { "changed" } else { "unchanged" }
        );
        if let Some(url) = &d.url {
            line.push_str(&format!("\t{url}"));
        }
        self.result(Reason::Deployed, &line);
    }

    fn serving(&self, endpoint: &str, functions: &[crate::serve::ServedFunction]) {
        for f in functions {
            self.result(Reason::Serving, &f.line());
        }
        self.line(&format!(
            "Serving {} function{} at {endpoint}; Ctrl-C to stop",
            functions.len(),
            if functions.len() == 1 { "" } else { "s" }
        ));
    }

    fn invoked(&self, invoked: &crate::serve::Invoked) {
        if self.options.json {
            return;
        }
        if let Some(tail) = &invoked.log_tail {
            for line in tail.lines() {
                self.line(&format!("  | {line}"));
            }
        }
        if let Some(error) = &invoked.function_error {
            self.line(&format!(
                "✗ {} answered with a function error ({error})",
                invoked.function
            ));
        }
        self.stdout(invoked.response.trim_end_matches('\n'));
    }

    fn invocation(&self, invocation: &crate::testing::Invocation) {
        let mark = if invocation.passed() { "✓" } else { "✗" };
        self.line(&format!(
            "{mark} {} ({}) {} -> {}{} in {} ms{}",
            invocation.function,
            invocation.arch,
            invocation.event,
            invocation.status,
            invocation
                .function_error
                .as_deref()
                .map(|e| format!(" {e}"))
                .unwrap_or_default(),
            invocation.duration_ms,
            match invocation.matches_expected {
                Some(true) => ", as expected",
                Some(false) => ", NOT as expected",
                None => "",
            },
        ));
        if self.options.json {
            return;
        }
        let text = if self.stdout_tty {
            serde_json::to_string_pretty(&invocation.response).unwrap_or_default()
        } else {
            invocation.response.to_string()
        };
        self.result(Reason::Invocation, &text);
        if invocation.matches_expected == Some(false) {
            // Shown even with -q: the response alone does not say what was wrong with it.
            let expected = invocation.expected.clone().unwrap_or_default();
            let context = if self.options.progress == ProgressMode::Quiet {
                format!(
                    "✗ {} ({}) {}: the response is NOT as expected\n",
                    invocation.function, invocation.arch, invocation.event
                )
            } else {
                String::new()
            };
            self.stderr(&format!("{context}  expected: {expected}"));
        }
    }

    fn planned(&self, deployment: &crate::deploy::DeployOutcome) {
        let crate::deploy::DeployOutcome::Planned {
            function,
            arch,
            image_uri,
            steps,
        } = deployment
        else {
            return;
        };
        self.result(
            Reason::Planned,
            &format!("{function}\t{arch}\t{image_uri}\t(dry run)"),
        );
        for step in steps {
            self.result(
                Reason::Planned,
                &format!(
                    "  {} {} {}: {}",
                    step.service, step.operation, step.target, step.summary
                ),
            );
            for change in &step.changes {
                self.result(
                    Reason::Planned,
                    &format!("      {}: {} -> {}", change.field, change.from, change.to),
                );
            }
        }
        if steps.is_empty() {
            self.result(Reason::Planned, "  nothing to change");
        }
    }

    /// One function's failure; errors of the whole command are the binary's to print.
    fn failure(&self, error: &ErrorEvent) {
        if let (Some(function), Some(arch), Some(stage)) =
            (&error.function, error.arch, error.stage)
        {
            if let Ok(mut bars) = self.bars.lock() {
                if let Some(bar) = bars.remove(&Key::Function(function.clone(), arch)) {
                    bar.finish_and_clear();
                }
            }
            self.stderr(&format!(
                "✗ {function} ({arch}) failed to {}: {}",
                stage.verb(),
                error.message
            ));
        }
    }
}
