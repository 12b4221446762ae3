# Debian's xsimd 8.1 package exports a target that links "xtl" but defines no such target, so the
# link line gets -lxtl and fails. xsimd needs xtl only for XSIMD_ENABLE_XTL_COMPLEX, which
# masquant does not use: an empty stand-in target satisfies the link item.
if(TARGET xsimd AND NOT TARGET xtl)
  get_target_property(_masquant_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
  if(_masquant_xsimd_links MATCHES "(^|;)xtl(;|$)")
    add_library(xtl INTERFACE IMPORTED)
  endif()
endif()
