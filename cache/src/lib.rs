//! kiln-cache: the local store every other part stands on: content-addressed
//! blobs (sha256, OCI digests), snapshots, layers, image names and the build
//! cache index in an embedded database, and garbage collection.
//!
//! Nothing lives here yet: the store issue fills it in.
