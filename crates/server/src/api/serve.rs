//! Listeners of the System Service: the TCP listener (default 127.0.0.1:7700) and
//! one Unix socket per execution directory for sandboxed agents (SPEC §6 network).
//! Both serve the same router and shut down gracefully: no new connections, and
//! requests in flight are answered.

use axum::serve::ListenerExt;
use axum::Router;
use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Serves `router` on a bound TCP listener until `shutdown` resolves.
pub async fn serve_tcp(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Without TCP_NODELAY, Nagle's algorithm holds each small write of a stream
    // (an LLM answer's events, live events) until the client's delayed ACK of the
    // previous one: up to 40 ms per event.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(component = "api", error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A Unix socket the System Service answers on; stops and removes the socket file
/// when dropped or [`UnixServer::stop`]ped.
#[derive(Debug)]
pub struct UnixServer {
    path: PathBuf,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl UnixServer {
    /// Binds `path` (replacing a stale socket file) and serves `router` on it. The
    /// socket is made connectable by any uid: the directory it lives in is what
    /// confines it to one sandbox.
    pub fn bind(path: &Path, router: Router) -> io::Result<UnixServer> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        let (stop, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
        });
        Ok(UnixServer {
            path: path.to_path_buf(),
            stop,
            task: Some(task),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, lets requests in flight finish, and removes the socket.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if self.task.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
