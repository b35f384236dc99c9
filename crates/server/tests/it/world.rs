//! Opening the world as `agora up` does: bootstrap on first start, resume after.

use agora_server::config::{Config, Overrides};
use agora_server::world;

#[tokio::test]
async fn a_restart_resumes_the_world_and_never_recreates_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(dir.path(), None, &Overrides::default()).unwrap();
    let first = world::open(config.clone()).await.unwrap();
    assert!(first.genesis.created);
    let b = first.store.balance(first.genesis.genesis).await.unwrap();
    assert_eq!(b.balance, config.economy.initial_genesis_credits);
    assert_eq!(
        b.held, config.genesis.first_bid_amount,
        "the first bid is an ordinary pending bid"
    );
    first.store.close().await;

    let second = world::open(config.clone()).await.unwrap();
    assert!(!second.genesis.created);
    assert_eq!(second.genesis.genesis, first.genesis.genesis);
    assert_eq!(second.store.agents(0, 10).await.unwrap().len(), 1);
    let b = second.store.balance(second.genesis.genesis).await.unwrap();
    assert_eq!(
        b.balance, config.economy.initial_genesis_credits,
        "no second grant"
    );
    assert_eq!(second.store.markets().await.unwrap().len(), 4);
    assert!(second.store.audit().await.unwrap().is_clean());
    assert!(std::path::Path::new(
        &second
            .store
            .agent(second.genesis.genesis)
            .await
            .unwrap()
            .workspace
    )
    .is_dir());
}

#[tokio::test]
async fn opening_the_world_removes_staging_folders_a_crash_left() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(dir.path(), None, &Overrides::default()).unwrap();
    let root = world::workspaces_root(&config);
    let stale = root.join(".staging-abc123");
    std::fs::create_dir_all(stale.join("sub")).unwrap();
    std::fs::write(stale.join("sub/main.py"), "print(1)").unwrap();
    let keep = root.join("agent-99");
    std::fs::create_dir_all(&keep).unwrap();
    let w = world::open(config).await.unwrap();
    assert!(!stale.exists(), "the staging folder is gone");
    assert!(keep.exists(), "workspaces are untouched");
    w.store.close().await;
}
