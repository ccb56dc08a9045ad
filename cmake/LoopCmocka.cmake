# Find cmocka and provide it as the target loop_cmocka.
# Sets LOOP_CMOCKA_FOUND.  pkg-config first (the libcmocka-dev package ships
# cmocka.pc); a plain header and library search when pkg-config is missing.
include_guard(DIRECTORY)

set(LOOP_CMOCKA_FOUND FALSE)
if(TARGET loop_cmocka)
    set(LOOP_CMOCKA_FOUND TRUE)
    return()
endif()

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
    pkg_check_modules(LOOP_PC_CMOCKA QUIET IMPORTED_TARGET cmocka)
endif()

if(LOOP_PC_CMOCKA_FOUND)
    add_library(loop_cmocka INTERFACE IMPORTED)
    target_link_libraries(loop_cmocka INTERFACE PkgConfig::LOOP_PC_CMOCKA)
    set(LOOP_CMOCKA_FOUND TRUE)
else()
    find_path(LOOP_CMOCKA_INCLUDE_DIR cmocka.h)
    find_library(LOOP_CMOCKA_LIBRARY cmocka)
    if(LOOP_CMOCKA_INCLUDE_DIR AND LOOP_CMOCKA_LIBRARY)
        add_library(loop_cmocka INTERFACE IMPORTED)
        target_include_directories(loop_cmocka INTERFACE "${LOOP_CMOCKA_INCLUDE_DIR}")
        target_link_libraries(loop_cmocka INTERFACE "${LOOP_CMOCKA_LIBRARY}")
        set(LOOP_CMOCKA_FOUND TRUE)
    endif()
endif()
