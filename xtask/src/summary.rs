//! Runs test steps, echoes their output, and adds up what they report, so one
//! closing line says how many tests passed, failed and were skipped.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::thread;

use anyhow::{Context, Result, bail};

#[derive(Debug, Default)]
pub struct Summary {
    passed: u64,
    failed: u64,
    skipped: Vec<String>,
    failed_steps: Vec<String>,
}

impl Summary {
    pub fn note_skip(&mut self, reason: String) {
        println!("skipped: {reason}");
        self.skipped.push(reason);
    }

    /// Runs `cargo test`, counting libtest's `test result:` lines and the
    /// `skipped: <reason>` lines tests write when the machine lacks something.
    pub fn run_cargo_tests(&mut self, step: &str, command: &mut Command) -> Result<()> {
        let lines = self.stream(step, command)?;
        for line in &lines {
            if let Some((passed, failed)) = parse_test_result(line) {
                self.passed += passed;
                self.failed += failed;
            }
        }
        Ok(())
    }

    /// Runs `node --test --test-reporter=tap`, counting its closing
    /// `# pass N` and `# fail N` lines; a step that fails without reporting
    /// a failed test (a crash while loading) counts as one failure.
    pub fn run_node_tests(&mut self, step: &str, command: &mut Command) -> Result<()> {
        let failures_before = self.failed_steps.len();
        let lines = self.stream(step, command)?;
        let count = |prefix: &str| -> u64 {
            lines
                .iter()
                .filter_map(|line| line.strip_prefix(prefix)?.trim().parse::<u64>().ok())
                .sum()
        };
        let (passed, failed) = (count("# pass "), count("# fail "));
        self.passed += passed;
        self.failed += failed;
        if failed == 0 && self.failed_steps.len() > failures_before {
            self.failed += 1;
        }
        Ok(())
    }

    /// Runs one step that is itself one test.
    pub fn run_step(&mut self, step: &str, command: &mut Command) -> Result<()> {
        let failures_before = self.failed_steps.len();
        self.stream(step, command)?;
        if self.failed_steps.len() == failures_before {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        Ok(())
    }

    fn stream(&mut self, step: &str, command: &mut Command) -> Result<Vec<String>> {
        println!("\n== {step}");
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start {command:?}"))?;
        let stderr = child.stderr.take().expect("piped");
        let stderr_lines = thread::spawn(move || echo_lines(stderr, std::io::stderr()));
        let mut lines = echo_lines(child.stdout.take().expect("piped"), std::io::stdout());
        lines.extend(stderr_lines.join().unwrap_or_default());
        let status = child.wait()?;
        for line in &lines {
            // `node --test` relays a test file's stderr as TAP comments.
            let line = line.trim_start();
            let line = line.strip_prefix("# ").unwrap_or(line);
            if let Some(reason) = line.strip_prefix("skipped: ") {
                self.skipped.push(reason.to_string());
            }
        }
        if !status.success() {
            self.failed_steps.push(format!("{step} ({status})"));
        }
        Ok(lines)
    }

    pub fn finish(self) -> Result<()> {
        println!();
        if !self.skipped.is_empty() {
            println!("Skipped (the machine lacks what they need):");
            for reason in &self.skipped {
                println!("  - {reason}");
            }
        }
        for step in &self.failed_steps {
            println!("FAILED step: {step}");
        }
        println!(
            "{} passed, {} failed, {} skipped",
            self.passed,
            self.failed,
            self.skipped.len()
        );
        if !self.failed_steps.is_empty() || self.failed > 0 {
            bail!("some tests failed; see above");
        }
        Ok(())
    }
}

fn echo_lines(source: impl Read, mut sink: impl Write) -> Vec<String> {
    let mut lines = Vec::new();
    for line in BufReader::new(source).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(sink, "{line}");
        lines.push(line);
    }
    lines
}

/// `test result: ok. 16 passed; 0 failed; 0 ignored; ...` -> (16, 0).
fn parse_test_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let number_before = |word: &str| -> Option<u64> {
        let end = rest.find(word)?;
        rest[..end].trim_end().rsplit(' ').next()?.parse().ok()
    };
    Some((number_before(" passed")?, number_before(" failed")?))
}

#[cfg(test)]
mod tests {
    use super::parse_test_result;

    #[test]
    fn reads_libtest_result_lines() {
        assert_eq!(
            parse_test_result("test result: ok. 16 passed; 0 failed; 0 ignored; 0 measured"),
            Some((16, 0))
        );
        assert_eq!(
            parse_test_result("test result: FAILED. 9 passed; 1 failed; 0 ignored;"),
            Some((9, 1))
        );
        assert_eq!(parse_test_result("running 3 tests"), None);
    }
}
