# loop_pkg_dep(NAME MODULE): find MODULE through pkg-config, for an adapter
# example and its tests.  Sets LOOP_<NAME>_FOUND and LOOP_<NAME>_VERSION
# (NAME upper-cased), and provides the target loop_<name> when found.  The
# target is global, so the first directory that asks finds the library for
# all of them.  (LoopHiredis.cmake does the same for hiredis alone.)
include_guard(GLOBAL)

function(loop_pkg_dep name module)
    string(TOUPPER "${name}" _up)
    if(NOT TARGET loop_${name})
        find_package(PkgConfig QUIET)
        if(PKG_CONFIG_FOUND)
            pkg_check_modules(LOOP_PC_${_up} QUIET IMPORTED_TARGET GLOBAL ${module})
        endif()
        if(LOOP_PC_${_up}_FOUND)
            add_library(loop_${name} INTERFACE IMPORTED GLOBAL)
            target_link_libraries(loop_${name} INTERFACE PkgConfig::LOOP_PC_${_up})
        endif()
    endif()
    if(TARGET loop_${name})
        set(LOOP_${_up}_FOUND TRUE PARENT_SCOPE)
        set(LOOP_${_up}_VERSION "${LOOP_PC_${_up}_VERSION}" PARENT_SCOPE) # cached by pkg-config
    else()
        set(LOOP_${_up}_FOUND FALSE PARENT_SCOPE)
        set(LOOP_${_up}_VERSION "" PARENT_SCOPE)
    endif()
endfunction()
