//! Rooms have owners: who may edit, delete and restore them, the admin token,
//! visibility, the paginated list and the creation limits.
