import ChunkStore

/// The controller's state, kept in the catalog beside the store's own tables (`ControllerSchema`), so
/// that catalog snapshots carry it and `a67 recover` brings nodes and apps back. `ControllerStore` reads
/// and writes it.
public enum Controller {}
