//! Builds the agent runtime image `agora-runtime:<version>` (SPEC §6, `agora runtime
//! build`): from `runtime/Dockerfile` where a registry is reachable, otherwise offline
//! from Debian packages (`mmdebstrap … | docker import`). Idempotent: an image of this
//! version built from the same recipe is kept as is.

use std::process::Stdio;
use std::time::{Duration, Instant};

use bollard::query_parameters::CreateImageOptions;
use bollard::Docker;
use futures_util::TryStreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::SandboxError;

/// The shipped Dockerfile, embedded so `agora runtime build` works from any directory.
pub const DOCKERFILE: &str = include_str!("../../../runtime/Dockerfile");

/// The image repository name.
pub const IMAGE_REPO: &str = "agora-runtime";

/// Image label holding a hash of the recipe, so a changed recipe rebuilds even when
/// the version did not change.
pub const RECIPE_LABEL: &str = "agora.runtime.recipe";

/// The Debian suite and packages of the offline build; keep in step with the Dockerfile.
const SUITE: &str = "bookworm";
const PACKAGES: &str = "python3,python3-debugpy";
const BASE_IMAGE: &str = "debian:bookworm-slim";

/// The image settings the Dockerfile states, as `docker import --change` lines.
const CHANGES: [&str; 4] = [
    "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp LANG=C.UTF-8",
    "USER 65534:65534",
    "WORKDIR /workspace",
    r#"CMD ["python3", "main.py"]"#,
];

/// `agora-runtime:<crate version>`.
pub fn runtime_image_tag() -> String {
    format!("{IMAGE_REPO}:{}", env!("CARGO_PKG_VERSION"))
}

/// How the image came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageBuildMethod {
    /// An image of this version and recipe already existed.
    AlreadyPresent,
    /// `docker build` of the shipped Dockerfile.
    Dockerfile,
    /// mmdebstrap piped into the Engine's import API.
    Offline,
}

/// Which way to build; `Auto` tries the Dockerfile only when a registry answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuildPreference {
    #[default]
    Auto,
    Dockerfile,
    Offline,
}

impl BuildPreference {
    /// Reads `AGORA_RUNTIME_BUILD` (`auto` | `dockerfile` | `offline`); CI sets
    /// `offline` to skip probing a registry it knows is unreachable.
    pub fn from_env() -> BuildPreference {
        match std::env::var("AGORA_RUNTIME_BUILD").as_deref() {
            Ok("offline") => BuildPreference::Offline,
            Ok("dockerfile") => BuildPreference::Dockerfile,
            _ => BuildPreference::Auto,
        }
    }
}

/// The result of [`build_runtime_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBuild {
    pub tag: String,
    pub method: ImageBuildMethod,
    pub elapsed: Duration,
    pub size_bytes: Option<i64>,
}

/// FNV-1a over everything that shapes the image.
pub fn recipe_hash() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [DOCKERFILE, SUITE, PACKAGES, &CHANGES.join("\n")] {
        for b in part.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Whether the image for this version and recipe exists.
pub async fn runtime_image_present(docker: &Docker) -> Result<bool, SandboxError> {
    match docker.inspect_image(&runtime_image_tag()).await {
        Ok(img) => {
            let labels = img.config.and_then(|c| c.labels).unwrap_or_default();
            Ok(labels.get(RECIPE_LABEL).map(String::as_str) == Some(recipe_hash().as_str()))
        }
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(SandboxError::Docker {
            context: "inspect runtime image",
            source: e,
        }),
    }
}

/// Builds `agora-runtime:<version>` unless it is already there, reporting progress
/// lines through `progress`.
pub async fn build_runtime_image(
    docker: &Docker,
    preference: BuildPreference,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<ImageBuild, SandboxError> {
    let started = Instant::now();
    let tag = runtime_image_tag();
    // Several processes may ask at once (`agora up` next to `agora runtime build`, or
    // a test runner with one process per test): one builds, the others wait for it
    // and then find the image present.
    let _lock = if runtime_image_present(docker).await? {
        None
    } else {
        progress("waiting for the runtime image build lock");
        Some(build_lock().await?)
    };
    if runtime_image_present(docker).await? {
        progress(&format!("{tag} is up to date"));
        return Ok(ImageBuild {
            tag,
            method: ImageBuildMethod::AlreadyPresent,
            elapsed: started.elapsed(),
            size_bytes: image_size(docker, &runtime_image_tag()).await,
        });
    }
    let method = match preference {
        BuildPreference::Dockerfile => ImageBuildMethod::Dockerfile,
        BuildPreference::Offline => ImageBuildMethod::Offline,
        BuildPreference::Auto => {
            progress(&format!("checking whether {BASE_IMAGE} can be had"));
            if base_image_available(docker).await {
                ImageBuildMethod::Dockerfile
            } else {
                progress("no registry reachable: building offline from Debian packages");
                ImageBuildMethod::Offline
            }
        }
    };
    match method {
        ImageBuildMethod::Dockerfile => build_with_dockerfile(&tag, progress).await?,
        _ => build_offline(docker, &tag, progress).await?,
    }
    let size_bytes = image_size(docker, &tag).await;
    progress(&format!(
        "built {tag} in {:.1} s ({} MB)",
        started.elapsed().as_secs_f64(),
        size_bytes.unwrap_or(0) / 1_000_000
    ));
    Ok(ImageBuild {
        tag,
        method,
        elapsed: started.elapsed(),
        size_bytes,
    })
}

/// An exclusive lock on a file in the temp directory, held until dropped.
async fn build_lock() -> Result<std::fs::File, SandboxError> {
    let path = std::env::temp_dir().join("agora-runtime-build.lock");
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| SandboxError::io(format!("open {}", path.display()), e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| SandboxError::io("lock the runtime image build", e.into()))?;
        Ok(file)
    })
    .await
    .map_err(|_| SandboxError::SupervisorGone)?
}

async fn image_size(docker: &Docker, tag: &str) -> Option<i64> {
    docker.inspect_image(tag).await.ok().and_then(|i| i.size)
}

/// The base image is local, or a pull of it succeeds quickly. An unreachable registry
/// usually fails at once (DNS); the timeout covers one that black-holes packets.
async fn base_image_available(docker: &Docker) -> bool {
    if docker.inspect_image(BASE_IMAGE).await.is_ok() {
        return true;
    }
    let opts = CreateImageOptions {
        from_image: Some(BASE_IMAGE.to_string()),
        ..Default::default()
    };
    let pull = docker
        .create_image(Some(opts), None, None)
        .try_for_each(|_| async { Ok(()) });
    matches!(
        tokio::time::timeout(Duration::from_secs(20), pull).await,
        Ok(Ok(()))
    )
}

async fn build_with_dockerfile(
    tag: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), SandboxError> {
    // `docker build -` takes the Dockerfile on stdin with an empty context, which is
    // all this recipe needs.
    let mut child = Command::new("docker")
        .args(["build", "--label"])
        .arg(format!("{RECIPE_LABEL}={}", recipe_hash()))
        .args(["-t", tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SandboxError::io("spawn docker build", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(DOCKERFILE.as_bytes())
            .await
            .map_err(|e| SandboxError::io("write Dockerfile to docker build", e))?;
    }
    let stderr_tail = forward_lines(&mut child, progress).await;
    let status = child
        .wait()
        .await
        .map_err(|e| SandboxError::io("wait for docker build", e))?;
    if !status.success() {
        return Err(SandboxError::ImageBuild(format!(
            "docker build exited with {status}: {stderr_tail}"
        )));
    }
    Ok(())
}

/// mmdebstrap writes a root filesystem tarball to stdout; it is streamed straight into
/// the Engine's import endpoint (`POST /images/create?fromSrc=-`), never to disk.
async fn build_offline(
    docker: &Docker,
    tag: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), SandboxError> {
    let hook = r#"--customize-hook=mkdir -p "$1/workspace" "$1/run/agora""#;
    let mut child = Command::new("mmdebstrap")
        .args([
            "--variant=minbase",
            &format!("--include={PACKAGES}"),
            // Documentation is dead weight in a sandbox nobody logs into; copyright
            // files stay, as the licences ask.
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            hook,
            SUITE,
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SandboxError::MissingTool("mmdebstrap"),
            _ => SandboxError::io("spawn mmdebstrap", e),
        })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| SandboxError::ImageBuild("mmdebstrap has no stdout".into()))?;
    let (repo, version) = tag.split_once(':').unwrap_or((tag, "latest"));
    let mut changes: Vec<String> = CHANGES.iter().map(|c| c.to_string()).collect();
    changes.push(format!("LABEL {RECIPE_LABEL}={}", recipe_hash()));
    let opts = CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some(repo.into()),
        tag: Some(version.into()),
        changes,
        ..Default::default()
    };
    let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(stdout));
    let import = docker
        .create_image(Some(opts), Some(body), None)
        .map_err(SandboxError::docker("import runtime image"))
        .try_collect::<Vec<_>>();
    let (stderr_tail, imported) = tokio::join!(forward_lines(&mut child, progress), import);
    let status = child
        .wait()
        .await
        .map_err(|e| SandboxError::io("wait for mmdebstrap", e))?;
    if !status.success() {
        return Err(SandboxError::ImageBuild(format!(
            "mmdebstrap exited with {status}: {stderr_tail}"
        )));
    }
    imported?;
    progress(&format!("imported {tag}"));
    Ok(())
}

/// Passes the child's stderr lines to `progress`; returns the last few for an error.
async fn forward_lines(
    child: &mut tokio::process::Child,
    progress: &mut (dyn FnMut(&str) + Send),
) -> String {
    let Some(stderr) = child.stderr.take() else {
        return String::new();
    };
    let mut lines = BufReader::new(stderr).lines();
    let mut tail: Vec<String> = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        progress(&line);
        tail.push(line);
        if tail.len() > 5 {
            tail.remove(0);
        }
    }
    tail.join(" | ")
}

/// Removes the runtime image (tests and `agora runtime build --force`).
pub async fn remove_runtime_image(docker: &Docker) -> Result<(), SandboxError> {
    let opts = bollard::query_parameters::RemoveImageOptions {
        force: true,
        ..Default::default()
    };
    match docker
        .remove_image(&runtime_image_tag(), Some(opts), None)
        .await
    {
        Ok(_)
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(SandboxError::docker("remove runtime image")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_and_recipe_are_stable() {
        assert_eq!(
            runtime_image_tag(),
            format!("agora-runtime:{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(recipe_hash(), recipe_hash());
        assert_eq!(recipe_hash().len(), 16);
        assert!(DOCKERFILE.contains("python3-debugpy"));
    }
}
