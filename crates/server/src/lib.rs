//! agora server.
