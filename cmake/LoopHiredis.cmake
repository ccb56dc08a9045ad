# Find hiredis through pkg-config (module hiredis), for the adapter example
# and its tests.  Sets LOOP_HIREDIS_FOUND and LOOP_HIREDIS_VERSION, and
# provides the target loop_hiredis when found.  The target is global, so the
# first directory that includes this finds hiredis for all of them.
include_guard(DIRECTORY)

if(NOT TARGET loop_hiredis)
    find_package(PkgConfig QUIET)
    if(PKG_CONFIG_FOUND)
        pkg_check_modules(LOOP_PC_HIREDIS QUIET IMPORTED_TARGET GLOBAL hiredis)
    endif()
    if(LOOP_PC_HIREDIS_FOUND)
        add_library(loop_hiredis INTERFACE IMPORTED GLOBAL)
        target_link_libraries(loop_hiredis INTERFACE PkgConfig::LOOP_PC_HIREDIS)
    endif()
endif()

if(TARGET loop_hiredis)
    set(LOOP_HIREDIS_FOUND TRUE)
    set(LOOP_HIREDIS_VERSION "${LOOP_PC_HIREDIS_VERSION}") # pkg-config's results are cached
else()
    set(LOOP_HIREDIS_FOUND FALSE)
    set(LOOP_HIREDIS_VERSION "")
endif()
