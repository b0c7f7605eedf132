//! `autobackup cost`: storage per class (current and noncurrent versions), monthly cost, a
//! 12-month projection under the bucket's own lifecycle rules, a history record and a
//! cost-growth check. A table by default, `--json` for machines, `--chart` for an SVG.
//!
//! Floor 6: may import modules of floors 0 to 5 only; it imports `anomaly`, `aws`, `cli::common`,
//! `cost`, `cost::chart`, `cost::prices`, `cost::report`, `errors`, `history`, `layout`, `notify`,
//! `preflight`, `s3`.

use std::path::PathBuf;

use chrono::Utc;
use clap::Args;

use super::common::{AnomalyArgs, BucketArgs, Context, RecordArgs};
use crate::anomaly::{self, Check, Floor, Side};
use crate::aws::{Aws, AwsArgs};
use crate::cost::{self, prices::PriceTable};
use crate::errors::AgentError;
use crate::history::{self, CostRecord, Record};
use crate::notify::{self, Notifier};
use crate::preflight;

#[derive(Args, Debug, Clone)]
pub struct Cost {
    #[command(flatten)]
    pub bucket: BucketArgs,

    /// Only analyse keys under this prefix (default: the whole bucket).
    #[arg(long, default_value = "", value_name = "PREFIX")]
    pub prefix: String,

    /// Price table overrides (TOML: region, [per_gb_month], [min_days]); defaults are the
    /// seed's us-east-1 prices.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,

    /// Months to project.
    #[arg(long, default_value_t = 12, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=120))]
    pub months: u32,

    /// Print the analysis as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Also write an SVG chart of the projection to this file.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,

    /// Do not append this run to the history file (the growth check still reads it).
    #[arg(long)]
    pub no_record: bool,

    #[command(flatten)]
    pub aws: AwsArgs,

    #[command(flatten)]
    pub record: RecordArgs,

    #[command(flatten)]
    pub anomaly: AnomalyArgs,
}

impl Cost {
    pub async fn run(&self, ctx: &Context) -> Result<(), AgentError> {
        let aws = Aws::connect(&self.aws).await;
        let analysis = self.perform(ctx, &aws).await?;
        if self.json {
            let j = serde_json::to_string_pretty(&analysis)
                .map_err(|e| AgentError::Internal(e.to_string()))?;
            println!("{j}");
        } else {
            print!("{}", cost::report::table(&analysis));
        }
        Ok(())
    }

    /// Everything `run` does but printing, with clients the caller built: returns the
    /// analysis. Failures are notified as in `run`.
    pub async fn perform(&self, ctx: &Context, aws: &Aws) -> Result<cost::Analysis, AgentError> {
        let aws = &aws.with_expected_owner(self.aws.expected_owner.as_deref());
        let notifier = Notifier::new(Some(aws.sns.clone()), self.record.topic_arn.clone());
        let result = self.execute(aws, &notifier).await;
        if let Err(e) = &result {
            super::common::notify_failure(
                &notifier,
                ctx,
                super::common::FailedRun {
                    command: "cost",
                    short: &self.bucket.bucket,
                    what: "cost analysis",
                    bucket: Some(&self.bucket.bucket),
                    key: None,
                },
                e,
            )
            .await;
        }
        result
    }

    async fn execute(&self, aws: &Aws, notifier: &Notifier) -> Result<cost::Analysis, AgentError> {
        let prices = PriceTable::load(self.prices.as_deref())?;
        let bucket = &self.bucket.bucket;
        preflight::aws_side(aws, bucket).await?;
        let listing = crate::s3::list_versions_with_classes(&aws.s3, bucket, &self.prefix).await?;
        let rules = crate::s3::lifecycle_rules(&aws.s3, bucket).await?;
        let versioning = crate::s3::versioning(&aws.s3, bucket).await?;
        let now = Utc::now();
        let mut analysis = cost::analyze(
            bucket,
            &listing,
            rules,
            versioning,
            &prices,
            now,
            self.months,
        );

        let history_path = self.record.history_path();
        let loaded = history::load(&history_path)?;
        let earlier: Vec<f64> = history::cost_records(&loaded.records, bucket)
            .iter()
            .map(|c| c.monthly_usd)
            .collect();
        let trend = anomaly::check(
            "monthly cost",
            "USD",
            &earlier,
            analysis.monthly_usd,
            &self.anomaly.thresholds(),
            Side::Above,
            Floor::NONE,
        );
        analysis.cost_trend = Some(trend.clone());

        if !self.no_record {
            history::append(
                &history_path,
                &Record::Cost(CostRecord {
                    time: now,
                    bucket: bucket.clone(),
                    current_bytes: analysis.current_bytes,
                    noncurrent_bytes: analysis.noncurrent_bytes,
                    objects: analysis.objects,
                    monthly_usd: analysis.monthly_usd,
                    projected_12m_usd: analysis.projection.lifecycle_total_usd,
                    standard_12m_usd: analysis.projection.standard_total_usd,
                    tool: crate::layout::tool_version(),
                }),
            )?;
        }
        if let Some(path) = &self.chart {
            let svg = cost::chart::render(
                &analysis.projection,
                &format!("{bucket}: {}-month storage cost projection", self.months),
            );
            std::fs::write(path, svg).map_err(|e| AgentError::local("chart", path, e))?;
            tracing::info!(chart = %path.display(), "chart written");
        }
        if let Check::Anomaly(f) = &trend {
            tracing::warn!(current = f.current, mean = f.mean, "cost growth anomaly");
            notifier
                .send(&notify::anomaly(&format!("cost of {bucket}"), None, f))
                .await;
        }
        Ok(analysis)
    }
}
