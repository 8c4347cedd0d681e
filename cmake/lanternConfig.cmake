# CMake package file for lantern's C library, installed by scripts/install-ffi.sh as
# PREFIX/lib/cmake/lantern/lanternConfig.cmake. It finds the prefix from its own place, so an
# installed tree can be moved. Targets:
#   lantern::static   liblantern_ffi.a with the system libraries Rust's standard library needs
#   lantern::shared   liblantern_ffi.so
#   lantern::lantern  the static one, or the shared one when LANTERN_USE_SHARED is ON
# Use: find_package(lantern REQUIRED) with CMAKE_PREFIX_PATH, lantern_ROOT or LANTERN_ROOT
# naming PREFIX, then target_link_libraries(app PRIVATE lantern::lantern).

get_filename_component(_lantern_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
set(_lantern_include "${_lantern_prefix}/include")
set(_lantern_libdir "${_lantern_prefix}/lib")

if(NOT EXISTS "${_lantern_include}/lantern.h")
  set(lantern_FOUND FALSE)
  set(lantern_NOT_FOUND_MESSAGE "no ${_lantern_include}/lantern.h")
  return()
endif()

include(CMakeFindDependencyMacro)
set(THREADS_PREFER_PTHREAD_FLAG ON)
find_dependency(Threads)

if(NOT TARGET lantern::static AND EXISTS "${_lantern_libdir}/liblantern_ffi.a")
  add_library(lantern::static STATIC IMPORTED)
  # What `rustc --print native-static-libs` lists for a staticlib on Linux with glibc; on
  # other systems, take that command's list for the target (only Linux is tested).
  if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
    set(_lantern_system_libs Threads::Threads dl m rt util gcc_s c)
  else()
    set(_lantern_system_libs Threads::Threads ${CMAKE_DL_LIBS} m)
  endif()
  set_target_properties(lantern::static PROPERTIES
    IMPORTED_LOCATION "${_lantern_libdir}/liblantern_ffi.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_lantern_include}"
    INTERFACE_LINK_LIBRARIES "${_lantern_system_libs}")
endif()

if(NOT TARGET lantern::shared AND EXISTS "${_lantern_libdir}/liblantern_ffi.so")
  add_library(lantern::shared SHARED IMPORTED)
  set_target_properties(lantern::shared PROPERTIES
    IMPORTED_LOCATION "${_lantern_libdir}/liblantern_ffi.so"
    IMPORTED_NO_SONAME TRUE
    INTERFACE_INCLUDE_DIRECTORIES "${_lantern_include}")
endif()

if(NOT TARGET lantern::lantern)
  if(LANTERN_USE_SHARED)
    set(_lantern_pick lantern::shared)
  else()
    set(_lantern_pick lantern::static)
  endif()
  if(NOT TARGET ${_lantern_pick})
    set(lantern_FOUND FALSE)
    set(lantern_NOT_FOUND_MESSAGE "${_lantern_pick}: its library is not in ${_lantern_libdir}")
    return()
  endif()
  add_library(lantern::lantern INTERFACE IMPORTED)
  set_target_properties(lantern::lantern PROPERTIES INTERFACE_LINK_LIBRARIES ${_lantern_pick})
endif()

set(lantern_INCLUDE_DIRS "${_lantern_include}")
set(lantern_LIBRARIES lantern::lantern)
