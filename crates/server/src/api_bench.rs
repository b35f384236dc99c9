//! `agora bench api`: the System Service under load over loopback. Not written yet.
