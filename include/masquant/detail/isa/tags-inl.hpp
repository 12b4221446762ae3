// tags-inl.hpp: an empty family source. isa.hpp compiles it for every family so that each
// family's namespace, tag and SIMD helpers exist before any hot path's source (see
// detail/isa/foreach_family.hpp).
