//! `agora runtime build`: builds the agent runtime image, from the shipped
//! Dockerfile where a registry is reachable, otherwise offline from Debian packages.

use agora_sandbox::runtime_image::remove_runtime_image;
use agora_sandbox::{build_runtime_image, connect_docker, runtime_image_tag, BuildPreference};
use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Build `agora-runtime:<version>` unless it already exists for this version and
    /// recipe. Offline builds need `mmdebstrap` and a reachable Debian mirror.
    Build {
        /// How to build; `auto` uses the Dockerfile only when a registry answers.
        /// Default: AGORA_RUNTIME_BUILD, else auto.
        #[arg(long, value_enum)]
        method: Option<Method>,
        /// Remove the existing image first and build it again.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Method {
    Auto,
    Dockerfile,
    Offline,
}

pub async fn run(cmd: &RuntimeCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RuntimeCommand::Build { method, force } => {
            let preference = match method {
                None => BuildPreference::from_env(),
                Some(Method::Auto) => BuildPreference::Auto,
                Some(Method::Dockerfile) => BuildPreference::Dockerfile,
                Some(Method::Offline) => BuildPreference::Offline,
            };
            let docker = connect_docker()
                .await
                .context("cannot reach the Docker Engine")?;
            if *force {
                remove_runtime_image(&docker).await?;
            }
            let mut progress = |line: &str| eprintln!("  {line}");
            eprintln!("building {}", runtime_image_tag());
            let b = build_runtime_image(&docker, preference, &mut progress).await?;
            println!(
                "{} ready ({:?}, {:.1} s, {} MB)",
                b.tag,
                b.method,
                b.elapsed.as_secs_f64(),
                b.size_bytes.unwrap_or(0) / 1_000_000
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
