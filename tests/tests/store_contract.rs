//! The store contract (`civic_host::store::contract`), run on every engine: the embedded
//! sled store, and PostgreSQL — a real server the tests start themselves (one cluster for
//! this binary, a fresh database for each store).

use std::sync::Arc;

use civic_host::store::contract::Fresh;
use civic_host::store::postgres::{PostgresConfig, PostgresStore};
use civic_host::store::sled::{Durability, SledStore};

mod sled {
    use super::*;

    fn fresh() -> Fresh {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = SledStore::open(&dir.path().join("store"), Durability::GroupCommit)
            .expect("a fresh sled store");
        Fresh {
            store: Arc::new(store),
            keep: Box::new(dir),
        }
    }

    civic_host::store_contract_tests!(fresh);
}

mod postgres {
    use super::*;
    use civic_tests::postgres::Postgres;

    fn fresh() -> Fresh {
        let url = Postgres::shared().fresh_database();
        let config = PostgresConfig::new(&url).expect("the harness's url");
        let store = PostgresStore::open(&config)
            .unwrap_or_else(|e| panic!("open {url}: {e}; log: {}", Postgres::shared().log()));
        Fresh {
            store: Arc::new(store),
            keep: Box::new(()),
        }
    }

    civic_host::store_contract_tests!(fresh);
}
