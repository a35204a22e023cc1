# BPF programs: bpf/*.bpf.c -> clang -target bpf (CO-RE) -> bpftool gen skeleton.
#
# For every bpf/<name>.bpf.c this produces ${CMAKE_BINARY_DIR}/generated/helios/<name>.skel.h
# (the object is embedded in the skeleton; user space includes "helios/<name>.skel.h"). All
# skeletons hang off one target, helios_bpf_skeletons, which helios_core depends on.
#
# vmlinux.h is generated at build time from the running kernel's BTF
# (bpftool btf dump file /sys/kernel/btf/vmlinux format c). On a machine without BTF, or with
# -DHELIOS_BPF_VMLINUX_FALLBACK=ON, the checked-in trimmed header bpf/vmlinux/vmlinux.h is used
# instead; CO-RE relocations make the result run on any BTF kernel either way.

find_program(HELIOS_BPF_CLANG NAMES clang-14 clang REQUIRED)
find_program(HELIOS_BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)
find_program(HELIOS_LLVM_STRIP NAMES llvm-strip-14 llvm-strip)

option(HELIOS_BPF_VMLINUX_FALLBACK "Use the checked-in bpf/vmlinux/vmlinux.h instead of BTF" OFF)
set(HELIOS_BPF_BTF_FILE "/sys/kernel/btf/vmlinux" CACHE FILEPATH "Kernel BTF for vmlinux.h")

set(HELIOS_BPF_GEN_DIR ${CMAKE_BINARY_DIR}/generated)
set(HELIOS_BPF_OBJ_DIR ${CMAKE_BINARY_DIR}/bpf)
set(HELIOS_VMLINUX_DIR ${HELIOS_BPF_GEN_DIR}/vmlinux)
set(HELIOS_VMLINUX_H ${HELIOS_VMLINUX_DIR}/vmlinux.h)
file(MAKE_DIRECTORY ${HELIOS_BPF_GEN_DIR}/helios ${HELIOS_BPF_OBJ_DIR} ${HELIOS_VMLINUX_DIR})

if(NOT HELIOS_BPF_VMLINUX_FALLBACK AND EXISTS ${HELIOS_BPF_BTF_FILE})
  message(STATUS "BPF: vmlinux.h from ${HELIOS_BPF_BTF_FILE}")
  add_custom_command(
    OUTPUT ${HELIOS_VMLINUX_H}
    COMMAND ${HELIOS_BPFTOOL} btf dump file ${HELIOS_BPF_BTF_FILE} format c > ${HELIOS_VMLINUX_H}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${HELIOS_VMLINUX_H}.tmp ${HELIOS_VMLINUX_H}
    COMMENT "BPF: generating vmlinux.h from kernel BTF"
    VERBATIM)
else()
  message(STATUS "BPF: no kernel BTF (or fallback forced): using bpf/vmlinux/vmlinux.h")
  add_custom_command(
    OUTPUT ${HELIOS_VMLINUX_H}
    COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_SOURCE_DIR}/bpf/vmlinux/vmlinux.h ${HELIOS_VMLINUX_H}
    DEPENDS ${CMAKE_SOURCE_DIR}/bpf/vmlinux/vmlinux.h
    COMMENT "BPF: using the checked-in vmlinux.h"
    VERBATIM)
endif()

# x86 only for now: the programs use no arch-specific tracing helpers, the define is what
# bpf_tracing.h expects if one ever does.
set(HELIOS_BPF_CFLAGS -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Wno-unused-function
    -I${HELIOS_VMLINUX_DIR} -I${CMAKE_SOURCE_DIR}/bpf -I${CMAKE_SOURCE_DIR}/include)

file(GLOB HELIOS_BPF_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/bpf/*.bpf.c)
set(HELIOS_BPF_SKELETONS)
foreach(src IN LISTS HELIOS_BPF_SOURCES)
  get_filename_component(fname ${src} NAME)
  string(REGEX REPLACE "\\.bpf\\.c$" "" name ${fname})
  set(obj ${HELIOS_BPF_OBJ_DIR}/${name}.bpf.o)
  set(skel ${HELIOS_BPF_GEN_DIR}/helios/${name}.skel.h)
  set(strip_cmd)
  if(HELIOS_LLVM_STRIP)
    # Drop DWARF only; .BTF and .BTF.ext stay (CO-RE and bpftool's named dumps need them).
    set(strip_cmd COMMAND ${HELIOS_LLVM_STRIP} -g ${obj})
  endif()
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${HELIOS_BPF_CLANG} ${HELIOS_BPF_CFLAGS} -MD -MF ${obj}.d -c ${src} -o ${obj}
    ${strip_cmd}
    DEPENDS ${src} ${HELIOS_VMLINUX_H}
    DEPFILE ${obj}.d
    COMMENT "BPF: compiling ${fname}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${HELIOS_BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "BPF: skeleton helios/${name}.skel.h"
    VERBATIM)
  list(APPEND HELIOS_BPF_SKELETONS ${skel})
endforeach()

add_custom_target(helios_bpf_skeletons DEPENDS ${HELIOS_BPF_SKELETONS})
