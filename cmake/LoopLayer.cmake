# loop_add_layer(NAME <name> SOURCES <files...> [DEPENDS <layers...>] [LIBS <libs...>])
#
# One layer above the core (DESIGN §1): its own static and shared library
# (libloop_<name>.a, libloop_<name>.so), its own CMake targets
# (libloop::<name>, libloop::<name>_shared, also as aliases in this tree),
# its own pkg-config module (libloop-<name>.pc) and find_package component
# (find_package(libloop COMPONENTS <name>)).  It is built from the public
# headers only: include/, never src/core/.  DEPENDS names the layers below
# it (the core is always there); LIBS adds system libraries.
include_guard(GLOBAL)

set(LOOP_LAYERS "" CACHE INTERNAL "layers above the core, in build order")

function(loop_add_layer)
    cmake_parse_arguments(L "" "NAME" "SOURCES;DEPENDS;LIBS" ${ARGN})
    set(n ${L_NAME})
    add_library(loop_${n}_objects OBJECT ${L_SOURCES})
    set_target_properties(loop_${n}_objects PROPERTIES
        POSITION_INDEPENDENT_CODE ON
        C_VISIBILITY_PRESET hidden)
    target_compile_definitions(loop_${n}_objects PRIVATE _GNU_SOURCE LOOP_BUILDING)
    target_include_directories(loop_${n}_objects PRIVATE "${PROJECT_SOURCE_DIR}/include")

    add_library(loop_${n}_static STATIC $<TARGET_OBJECTS:loop_${n}_objects>)
    add_library(loop_${n}_shared SHARED $<TARGET_OBJECTS:loop_${n}_objects>)
    set_target_properties(loop_${n}_static PROPERTIES OUTPUT_NAME loop_${n} EXPORT_NAME ${n})
    set_target_properties(loop_${n}_shared PROPERTIES
        OUTPUT_NAME loop_${n}
        EXPORT_NAME ${n}_shared
        VERSION "${PROJECT_VERSION}"
        SOVERSION "${PROJECT_VERSION_MAJOR}")
    set(static_deps loop_static)
    set(shared_deps loop_shared)
    set(pc_requires "libloop")
    foreach(d IN LISTS L_DEPENDS)
        list(PREPEND static_deps loop_${d}_static)
        list(PREPEND shared_deps loop_${d}_shared)
        string(APPEND pc_requires " libloop-${d}")
    endforeach()
    foreach(kind static shared)
        target_include_directories(loop_${n}_${kind} PUBLIC
            "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>"
            "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
        target_link_libraries(loop_${n}_${kind} PUBLIC ${${kind}_deps} ${L_LIBS})
    endforeach()
    if(NOT LOOP_SANITIZE)
        target_link_options(loop_${n}_shared PRIVATE "LINKER:--no-undefined")
    endif()
    add_library(libloop::${n} ALIAS loop_${n}_static)
    add_library(libloop::${n}_shared ALIAS loop_${n}_shared)

    install(TARGETS loop_${n}_static loop_${n}_shared
        EXPORT libloopTargets
        ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")

    # pkg-config: as for libloop.pc (see CMakeLists.txt), the prefix is
    # filled in at install time.
    set(LOOP_PC_NAME "libloop-${n}")
    set(LOOP_PC_LIB "loop_${n}")
    set(LOOP_PC_REQUIRES "${pc_requires}")
    set(LOOP_PC_LIBS_PRIVATE "")
    foreach(lib IN LISTS L_LIBS)
        string(APPEND LOOP_PC_LIBS_PRIVATE " -l${lib}")
    endforeach()
    set(LOOP_PC_PREFIX "@LOOP_PC_INSTALL_PREFIX@")
    configure_file("${PROJECT_SOURCE_DIR}/cmake/libloop-layer.pc.in"
        "${PROJECT_BINARY_DIR}/libloop-${n}.pc.template" @ONLY)
    install(CODE "
        set(LOOP_PC_INSTALL_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
        set(_loop_pc \"\$ENV{DESTDIR}${_loop_pc_dir}/libloop-${n}.pc\")
        message(STATUS \"Installing: \${_loop_pc}\")
        configure_file(\"${PROJECT_BINARY_DIR}/libloop-${n}.pc.template\" \"\${_loop_pc}\" @ONLY)
        list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${_loop_pc}\")
    ")
    set(LOOP_LAYERS ${LOOP_LAYERS} ${n} CACHE INTERNAL "layers above the core, in build order")
endfunction()
