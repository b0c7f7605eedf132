//! `harness template`: writes the topology's two CloudFormation templates
//! (`deploy/cloudformation/`, see [`crate::topology::template`]), or with `--check` says
//! whether the committed ones still match the topology file (exit 1, naming the file, when
//! one differs).

use std::path::PathBuf;

use clap::Args;

use crate::topology::template::{self, StackPart};
use crate::topology::TopologySpec;

#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// Topology file.
    #[arg(long, default_value_os_t = TopologySpec::default_path())]
    pub topology: PathBuf,
    /// Directory the templates are written to.
    #[arg(long, default_value_os_t = template::default_dir())]
    pub out_dir: PathBuf,
    /// Write nothing; exit 1 when a file there differs from what the topology gives.
    #[arg(long)]
    pub check: bool,
}

impl TemplateArgs {
    pub async fn run(self) -> anyhow::Result<i32> {
        let spec = TopologySpec::load(&self.topology)?;
        let Some(seed) = spec.profile("seed") else {
            anyhow::bail!(
                "{}: no `seed` profile (the templates' timing defaults)",
                self.topology.display()
            );
        };
        let mut stale = 0;
        for part in StackPart::ALL {
            let path = self.out_dir.join(part.file_name());
            let text = template::render(&spec, seed, part);
            if self.check {
                match std::fs::read_to_string(&path) {
                    Ok(found) if found == text => println!("{}: up to date", path.display()),
                    Ok(_) => {
                        eprintln!(
                            "{}: differs from {} (regenerate it: make template)",
                            path.display(),
                            self.topology.display()
                        );
                        stale += 1;
                    }
                    Err(e) => {
                        eprintln!("{}: {e} (generate it: make template)", path.display());
                        stale += 1;
                    }
                }
            } else {
                std::fs::create_dir_all(&self.out_dir)?;
                std::fs::write(&path, &text)?;
                println!("wrote {} ({} bytes)", path.display(), text.len());
            }
        }
        Ok(if stale == 0 { 0 } else { 1 })
    }
}
