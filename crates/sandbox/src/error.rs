//! The sandbox error type: everything that stops an execution from being launched or a
//! runtime image from being built. How an execution *ended* is not an error; it is an
//! [`crate::Outcome`].

/// Why the sandbox could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec cannot be run as given (missing workspace, empty command, …).
    #[error("invalid execution spec: {0}")]
    InvalidSpec(String),
    /// No Docker Engine answered, or it is too old.
    #[error("docker engine unavailable: {0}")]
    DockerUnavailable(String),
    /// A Docker Engine API call failed.
    #[error("docker {context}: {source}")]
    Docker {
        context: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
    /// The runtime image for this version has not been built.
    #[error("runtime image {0} is missing: run `agora runtime build`")]
    ImageMissing(String),
    /// Building the runtime image failed.
    #[error("runtime image build failed: {0}")]
    ImageBuild(String),
    /// A host file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A host tool the backend relies on is not installed.
    #[error("required tool `{0}` not found (install util-linux / bubblewrap)")]
    MissingTool(&'static str),
    /// A Docker call that should be quick did not answer in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The supervising task ended without reporting an outcome (it panicked).
    #[error("the sandbox supervisor stopped without an outcome")]
    SupervisorGone,
}

impl SandboxError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        SandboxError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn docker(context: &'static str) -> impl Fn(bollard::errors::Error) -> Self {
        move |source| SandboxError::Docker { context, source }
    }
}
