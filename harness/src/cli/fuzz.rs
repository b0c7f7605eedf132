//! `harness fuzz --runs N [--seed S]`: plays N generated workloads
//! ([`crate::scenario::generate`]) against one engine and checks the invariants
//! ([`crate::scenario::invariants`]) after each group.
//!
//! The topology is provisioned once; workloads are played `--concurrency` at a time, each
//! under its own key prefix (`fz/<seed>/<n>/`), and the group is checked once the system
//! is quiet. A workload that breaks an invariant is played again alone (to be sure it is
//! its own), shrunk by proptest's value tree to the smallest workload that still breaks
//! one, and written as a ready-to-commit scenario file `fuzz-<seed>-<n>.toml` with the
//! violations in its header. The summary gives runs, faults by kind and wall time, and one
//! `fuzz result: P passed; F failed;` line that `make test` adds up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use proptest::strategy::ValueTree;

use crate::engine::{EngineKind, StartOptions};
use crate::probe;
use crate::scenario::generate::{self, Workload};
use crate::scenario::invariants::Violation;
use crate::scenario::runner::Session;
use crate::scenario::{self, Scenario};
use crate::topology::TopologySpec;

#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// How many workloads to play.
    #[arg(long, default_value_t = 100)]
    pub runs: usize,
    /// Seed of the generator (random when absent; printed for replay).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Workloads played at once on the shared topology.
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Operations per workload at most.
    #[arg(long, default_value_t = 8)]
    pub max_ops: usize,
    /// Shrinking replays at most this many candidates.
    #[arg(long, default_value_t = 40)]
    pub shrink_budget: usize,
    /// Where a shrunk failing case is written.
    #[arg(long, default_value_os_t = scenario::dir())]
    pub out: PathBuf,
    /// Topology file.
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
}

/// A workload as the runner plays it.
fn scenario_of(
    w: &Workload,
    seed: u64,
    n: usize,
    attempt: usize,
    categories: &[String],
) -> Result<Scenario, crate::errors::FileError> {
    let text = generate::render(w, &prefix(seed, n, attempt), &origin(seed, n));
    Scenario::parse(
        &PathBuf::from(format!("fuzz-{seed}-{n}.toml")),
        &text,
        categories,
    )
}

/// Every play of a workload gets keys of its own (`attempt` 0 in its group, then one per
/// replay): a replay never meets the versions an earlier one left in the buckets.
fn prefix(seed: u64, n: usize, attempt: usize) -> String {
    if attempt == 0 {
        format!("fz/{seed}/{n}/")
    } else {
        format!("fz/{seed}/{n}.{attempt}/")
    }
}

fn origin(seed: u64, n: usize) -> String {
    format!("seed {seed}, workload {n}")
}

impl FuzzArgs {
    pub async fn run(self, kind: EngineKind) -> anyhow::Result<i32> {
        let started = Instant::now();
        let seed = self.seed.unwrap_or_else(rand::random);
        println!(
            "fuzz: seed {seed} on {kind} (replay: harness --engine {kind} fuzz --runs {} --seed {seed})",
            self.runs
        );
        let spec = TopologySpec::load(&self.topology)?;
        let engine = probe::start(kind, &StartOptions::default()).await?;
        let session = Session::start(&engine, &spec, "fast").await?;
        let result = self.play_all(&session, &spec, seed).await;
        let fired = session.faults_fired().await;
        session.stop().await;
        let (passed, failed, injected, written) = result?;
        println!(
            "fuzz: {} workload(s) on {kind}: {passed} passed, {failed} failed, in {:.1}s",
            passed + failed,
            started.elapsed().as_secs_f64()
        );
        println!("fuzz: faults and awkward steps played, by kind:");
        for (k, n) in &injected {
            println!("  {k:<28} {n}");
        }
        println!("fuzz: API faults fired:");
        for (k, n) in &fired {
            println!("  {k:<28} {n}");
        }
        if let Some(p) = written {
            println!("fuzz: shrunk failing case written to {}", p.display());
        }
        println!("fuzz result: {passed} passed; {failed} failed;");
        Ok(if failed == 0 { 0 } else { 1 })
    }

    #[allow(clippy::type_complexity)]
    async fn play_all(
        &self,
        session: &Session<'_>,
        spec: &TopologySpec,
        seed: u64,
    ) -> anyhow::Result<(usize, usize, BTreeMap<&'static str, usize>, Option<PathBuf>)> {
        let mut trees = generate::trees(seed, self.runs, self.max_ops)?;
        let (mut passed, mut failed) = (0, 0);
        let mut injected: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut written = None;
        let group = self.concurrency.max(1);
        for start in (0..trees.len()).step_by(group) {
            let end = (start + group).min(trees.len());
            let workloads: Vec<Workload> = trees[start..end].iter().map(|t| t.current()).collect();
            let mut scenarios = Vec::new();
            for (i, w) in workloads.iter().enumerate() {
                let s = scenario_of(w, seed, start + i, 0, &spec.categories)?;
                for k in generate::fault_kinds(&s) {
                    *injected.entry(k).or_insert(0) += 1;
                }
                scenarios.push(s);
            }
            let group_started = Instant::now();
            let from = session.mark().await;
            let played = futures::future::join_all(scenarios.iter().map(|s| session.play(s))).await;
            let mut truths = Vec::new();
            let mut errors = Vec::new();
            for (i, p) in played.into_iter().enumerate() {
                match p {
                    Ok(t) => truths.push(t),
                    Err(e) => {
                        truths.push(Vec::new());
                        errors.push((i, e.to_string()));
                    }
                }
            }
            let checked = session.check(from, &truths).await?;
            let mut suspects: Vec<usize> = Vec::new();
            for (i, v) in checked.workloads.iter().enumerate() {
                if !v.is_empty() {
                    for v in v {
                        eprintln!("fuzz: workload {} in its group: {v}", start + i);
                    }
                    suspects.push(i);
                }
            }
            for (i, e) in &errors {
                eprintln!("fuzz: workload {} failed to play: {e}", start + i);
                suspects.push(*i);
            }
            if !checked.system.is_empty() && suspects.is_empty() {
                // Whose queue or dead letter it is is not known: every workload of the
                // group is a suspect until played alone.
                for v in &checked.system {
                    eprintln!("fuzz: group {start}..{end}: {v}");
                }
                suspects.extend(0..workloads.len());
            }
            suspects.sort_unstable();
            suspects.dedup();
            let mut failing = Vec::new();
            for i in suspects {
                let n = start + i;
                if let Some(v) = self
                    .fails_alone(session, spec, seed, n, 1, &workloads[i])
                    .await?
                {
                    failing.push((i, v));
                } else {
                    eprintln!("fuzz: workload {n} failed in its group but not alone");
                }
            }
            eprintln!(
                "fuzz: workloads {start}..{end}: {} failing, {:.1}s",
                failing.len(),
                group_started.elapsed().as_secs_f64()
            );
            failed += failing.len();
            passed += workloads.len() - failing.len();
            for (i, violations) in failing {
                let n = start + i;
                println!(
                    "fuzz: workload {n} breaks {} invariant(s):",
                    violations.len()
                );
                for v in &violations {
                    println!("  {v}");
                }
                if written.is_none() {
                    let (w, v) = self
                        .shrink(
                            session,
                            spec,
                            seed,
                            n,
                            &mut trees[n],
                            (workloads[i].clone(), violations),
                        )
                        .await?;
                    written = Some(self.write(seed, n, &w, &v)?);
                }
            }
        }
        Ok((passed, failed, injected, written))
    }

    /// Plays `w` alone; its violations (or its playing error as one), if any.
    async fn fails_alone(
        &self,
        session: &Session<'_>,
        spec: &TopologySpec,
        seed: u64,
        n: usize,
        attempt: usize,
        w: &Workload,
    ) -> anyhow::Result<Option<Vec<String>>> {
        let s = scenario_of(w, seed, n, attempt, &spec.categories)?;
        let from = session.mark().await;
        let truths = match session.play(&s).await {
            Ok(t) => t,
            Err(e) => {
                // Let the system settle before the next candidate.
                let _ = session.check(from, &[]).await;
                return Ok(Some(vec![format!("playing failed: {e}")]));
            }
        };
        let checked = session.check(from, std::slice::from_ref(&truths)).await?;
        let all: Vec<String> = checked
            .workloads
            .iter()
            .flatten()
            .chain(&checked.system)
            .map(Violation::to_string)
            .collect();
        Ok((!all.is_empty()).then_some(all))
    }

    /// proptest's shrinking, one replay per candidate: simplify while it still fails,
    /// complicate when it stops failing.
    async fn shrink(
        &self,
        session: &Session<'_>,
        spec: &TopologySpec,
        seed: u64,
        n: usize,
        tree: &mut Box<dyn ValueTree<Value = Workload>>,
        mut best: (Workload, Vec<String>),
    ) -> anyhow::Result<(Workload, Vec<String>)> {
        let mut tries = 0;
        if !tree.simplify() {
            return Ok(best);
        }
        while tries < self.shrink_budget {
            tries += 1;
            let candidate = tree.current();
            match self
                .fails_alone(session, spec, seed, n, tries + 2, &candidate)
                .await?
            {
                Some(v) => {
                    eprintln!(
                        "fuzz: shrink {tries}: {} op(s) still fail",
                        candidate.ops.len()
                    );
                    best = (candidate, v);
                    if !tree.simplify() {
                        break;
                    }
                }
                None => {
                    if !tree.complicate() {
                        break;
                    }
                }
            }
        }
        Ok(best)
    }

    fn write(
        &self,
        seed: u64,
        n: usize,
        w: &Workload,
        violations: &[String],
    ) -> anyhow::Result<PathBuf> {
        let mut text = String::new();
        text.push_str(&format!(
            "# Replay the search: harness fuzz --runs {} --seed {seed} (workload {n}).\n",
            n + 1
        ));
        text.push_str("# It broke:\n");
        for v in violations {
            for line in v.lines() {
                text.push_str(&format!("#   {line}\n"));
            }
        }
        text.push_str(&generate::render(w, &prefix(seed, n, 0), &origin(seed, n)));
        std::fs::create_dir_all(&self.out)?;
        let path = self.out.join(format!("fuzz-{seed}-{n}.toml"));
        std::fs::write(&path, text)?;
        Ok(path)
    }
}
