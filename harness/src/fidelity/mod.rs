//! The fidelity layer: the one room that makes a local engine look like AWS to every client.
//!
//! - [`proxy`]: the gap proxy every client talks through; it answers what the engine gets
//!   wrong (`engine::gaps` lists each gap with its AWS reference).
//! - [`faults`]: API faults in each service's wire format, armed by scenarios.
//! - [`checksums`]: S3's default CRC64NVME for uploads that send no checksum.
//! - [`replicator`]: S3 replication as AWS documents it. On a local engine the harness
//!   replicator copies versions by the bucket's `topology::replication::BucketReplication`
//!   rules and the proxy makes clients see what AWS shows (source version ids on replicas,
//!   statuses only for eligible objects). Only a real AWS endpoint replicates natively;
//!   `topology::replication::mode` is the one place that decides which.
//!
//! Floor 3: imports the floors below (aws, history, observe, s3util, engine, topology);
//! nothing of the runtime or the scenarios.

pub mod checksums;
pub mod faults;
pub mod proxy;
pub mod replicator;
pub mod target;
