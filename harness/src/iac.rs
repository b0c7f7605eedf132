//! The field's own static checks of the deployable infrastructure (`deploy/`): cfn-lint on
//! each CloudFormation template and Checkov's policies on each template and on the Terraform
//! module, from the hashed lock `engines/cfn-tools-requirements.lock` (installed into the
//! harness cache by `engines/install-cfn-tools.sh`). `harness gate` records one JUnit case per
//! tool and unit (a template file, the Terraform directory); `tools/iac-check.sh` (`make iac`)
//! runs the same tools with per-check JUnit reports.
//!
//! Offline: Checkov runs with `--skip-download`, `BC_SKIP_MAPPING` and
//! `CKV_SKIP_PACKAGE_UPDATE_CHECK` (otherwise it fetches Prisma Cloud's guidelines and asks
//! PyPI for a newer release on every start) and without an API key.
//!
//! Floor 1: may import floor 0 (ground).

use std::path::{Path, PathBuf};
use std::process::Command;

/// One static checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tool {
    CfnLint,
    Checkov,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::CfnLint => "cfn-lint",
            Tool::Checkov => "checkov",
        }
    }
}

/// One tool's verdict on one unit.
#[derive(Debug, Clone)]
pub struct Finding {
    pub tool: Tool,
    /// A template file, or the Terraform directory.
    pub unit: PathBuf,
    pub passed: bool,
    /// What the tool printed (its findings when it failed).
    pub output: String,
}

/// Why the checks could not run.
#[derive(Debug, thiserror::Error)]
pub enum IacError {
    #[error("installing cfn-lint and checkov (engines/install-cfn-tools.sh) failed: {0}")]
    Install(String),
    #[error("running {tool} on {}: {source}", unit.display())]
    Run {
        tool: &'static str,
        unit: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The tools' bin directory, installing them on first use.
pub fn bin_dir() -> Result<PathBuf, IacError> {
    let script = crate::paths::repo_root()
        .join("engines")
        .join("install-cfn-tools.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| IacError::Install(e.to_string()))?;
    if !out.status.success() {
        return Err(IacError::Install(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

/// The units under `deploy/`: each CloudFormation template, and the Terraform directory.
pub fn units(deploy: &Path) -> Vec<(Tool, PathBuf)> {
    let mut units = Vec::new();
    let templates = deploy.join("cloudformation");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&templates)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for f in &files {
        units.push((Tool::CfnLint, f.clone()));
        units.push((Tool::Checkov, f.clone()));
    }
    let terraform = deploy.join("terraform");
    if terraform.is_dir() {
        units.push((Tool::Checkov, terraform));
    }
    units
}

/// Runs each tool on each unit of `deploy`.
pub fn check(deploy: &Path) -> Result<Vec<Finding>, IacError> {
    let bin = bin_dir()?;
    units(deploy)
        .into_iter()
        .map(|(tool, unit)| {
            let mut cmd = match tool {
                Tool::CfnLint => {
                    let mut c = Command::new(bin.join("cfn-lint"));
                    c.args(["--non-zero-exit-code", "error", "--"]).arg(&unit);
                    c
                }
                Tool::Checkov => {
                    let mut c = Command::new(bin.join("checkov"));
                    c.env_remove("BC_API_KEY")
                        .env_remove("PRISMA_API_URL")
                        .env("BC_SKIP_MAPPING", "TRUE")
                        .env("CKV_SKIP_PACKAGE_UPDATE_CHECK", "true")
                        .args([
                            "--framework",
                            "cloudformation,terraform",
                            "--skip-download",
                            "--quiet",
                            "--compact",
                        ])
                        .arg(if unit.is_dir() { "-d" } else { "-f" })
                        .arg(&unit);
                    c
                }
            };
            let out = cmd.output().map_err(|source| IacError::Run {
                tool: tool.name(),
                unit: unit.clone(),
                source,
            })?;
            let mut output = String::from_utf8_lossy(&out.stdout).to_string();
            output.push_str(&String::from_utf8_lossy(&out.stderr));
            let root = crate::paths::repo_root();
            let unit = unit
                .strip_prefix(&root)
                .map(Path::to_path_buf)
                .unwrap_or(unit);
            Ok(Finding {
                tool,
                unit,
                passed: out.status.success(),
                output: output.trim().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every template is linted and scanned, and the Terraform module scanned as a whole.
    #[test]
    fn the_units_are_every_template_and_the_terraform_module() {
        let deploy = crate::paths::repo_root().join("deploy");
        let units: Vec<(Tool, String)> = units(&deploy)
            .into_iter()
            .map(|(t, p)| {
                (
                    t,
                    p.strip_prefix(&deploy)
                        .expect("under deploy/")
                        .display()
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(
            units,
            [
                (
                    Tool::CfnLint,
                    "cloudformation/autobackup-primary.yaml".into()
                ),
                (
                    Tool::Checkov,
                    "cloudformation/autobackup-primary.yaml".into()
                ),
                (
                    Tool::CfnLint,
                    "cloudformation/autobackup-replica.yaml".into()
                ),
                (
                    Tool::Checkov,
                    "cloudformation/autobackup-replica.yaml".into()
                ),
                (Tool::Checkov, "terraform".into()),
            ]
        );
    }
}
