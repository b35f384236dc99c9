//! The sandbox's one integration-test binary: every §6 boundary is a test that runs a
//! small script inside a real sandbox and asserts what happened.
//!
//! Docker tests need a running Docker Engine; they skip only when none answers and
//! `AGORA_REQUIRE_DOCKER` is unset (CI sets it, so they cannot silently skip). The
//! runtime image is built once, idempotently, before the first docker test.

mod sandbox {
    pub mod docker;
    pub mod helpers;
    pub mod process;
}
