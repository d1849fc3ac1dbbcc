//! launchwatch's host-independent core: observations, the store, collectors behind a platform
//! seam, analytics and table definitions. Both hosts (osquery thrift, standalone SQLite) reach
//! tables only through [`framework::TableSet`].

pub mod analytics;
pub mod attribution;
pub mod binary;
pub mod binary_cache;
pub mod capture;
pub mod config;
pub mod docs;
pub mod env;
pub mod executables;
pub mod facts;
pub mod framework;
pub mod jobs;
pub mod launchd;
pub mod net;
pub mod observation;
pub mod pack;
pub mod platform;
pub mod redact;
pub mod sampler;
pub mod store;
pub mod tables;
pub mod trust;
