//! AuthorizationPolicy: strict input types, compilation, and evaluation as a waypoint
//! enforces it (CUSTOM, DENY, ALLOW; AUDIT marks only).
