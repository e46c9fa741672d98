# tests/rig/guest/counter.S: the rig's tiny guest, a boot sector of our own.
#
# Why: the rig's tests must prove that a QEMU guest kept running across a
# live migration (no reboot, no restart from scratch).  A Linux guest needs
# >= 96 MiB and seconds to boot; this needs 32 MiB, boots in milliseconds
# and uses next to no CPU (it sleeps in hlt between timer interrupts).
#
# What: SeaBIOS loads it at 0000:7c00 from the guest's first disk (the NBD
# disk of `rig guest-disk NAME`).  It prints on COM1 (0x3f8)
#     vigil-guest NAME boot
# once, then every 18 BIOS timer ticks (18.2 Hz: about every second)
#     vigil-guest NAME tick N
# with N = 0, 1, 2, ... forever.  N lives in the guest's RAM, so a migrated
# guest goes on counting where it was; a rebooted one prints "boot" and
# starts again from 0.
#
# NAME is the NUL-terminated text at offset NAME_OFFSET (0x180) of the
# sector, at most 61 bytes; the rig writes the guest's name there when it
# makes the disk (the built image holds "guest").
#
# Built by `make` (Makefile.am): GNU as --32 (.code16, x86 real mode), then
# ld -Ttext=0x7c00 --oformat binary into a flat 512-byte image ending in the
# 0x55 0xAA boot signature.  No binary is committed.

        .code16
        .set COM1, 0x3f8
        .set BDA_TICKS, 0x46c           # BIOS data area: 32-bit tick count
        .set TICKS_PER_LINE, 18
        .set NAME_OFFSET, 0x180

        .text
        .globl _start
_start:
        cli
        xorw %ax, %ax
        movw %ax, %ds
        movw %ax, %es
        movw %ax, %ss
        movw $0x7c00, %sp
        ljmp $0, $start                 # some BIOSes jump to 07c0:0000
start:
        cld
        # COM1: no interrupts, 115200 8N1, FIFOs on, DTR+RTS (uart_init)
        movw $uart_init, %si
0:      lodsb                           # register (offset from COM1)
        cmpb $0xff, %al
        je 1f
        movw $COM1, %dx
        addb %al, %dl
        lodsb                           # value
        outb %al, %dx
        jmp 0b
1:
        movw $s_prefix, %si
        call puts
        movw $guest_name, %si
        call puts
        movw $s_boot, %si
        call puts

        xorl %eax, %eax
        movl %eax, counter
        movl %eax, elapsed
        movl BDA_TICKS, %eax
        movl %eax, last
        sti

line:
        movw $s_prefix, %si
        call puts
        movw $guest_name, %si
        call puts
        movw $s_tick, %si
        call puts
        movl counter, %eax
        call putdec
        movw $s_crlf, %si
        call puts
        incl counter

wait:
        hlt                             # until the next interrupt (the timer)
        cli
        movl BDA_TICKS, %eax
        sti
        movl %eax, %ebx
        subl last, %ebx                 # ticks since the last look
        cmpl %eax, last
        jbe 1f
        movl $1, %ebx                   # the count went back (midnight): one tick
1:      movl %eax, last
        addl elapsed, %ebx
        movl %ebx, elapsed
        cmpl $TICKS_PER_LINE, %ebx
        jb wait
        subl $TICKS_PER_LINE, elapsed
        jmp line

# putc: the byte in %al to COM1, once its transmitter holds nothing
putc:
        pushw %dx
        pushw %ax
        movw $COM1 + 5, %dx
2:      inb %dx, %al
        testb $0x20, %al
        jz 2b
        popw %ax
        movw $COM1, %dx
        outb %al, %dx
        popw %dx
        ret

# puts: the NUL-terminated text at %ds:%si
puts:
        lodsb
        testb %al, %al
        jz 3f
        call putc
        jmp puts
3:      ret

# putdec: %eax in decimal
putdec:
        movl $10, %ecx
        xorw %bx, %bx
4:      xorl %edx, %edx
        divl %ecx
        pushw %dx
        incw %bx
        testl %eax, %eax
        jnz 4b
5:      popw %ax
        addb $'0', %al
        call putc
        decw %bx
        jnz 5b
        ret

# (register, value) pairs: IER off, DLAB on, divisor 1 (115200), LCR 8N1,
# FIFO control, modem control; 0xff ends the list
uart_init: .byte 1, 0x00, 3, 0x80, 0, 0x01, 1, 0x00, 3, 0x03, 2, 0xc7, 4, 0x03, 0xff

s_prefix: .asciz "vigil-guest "
s_boot:   .asciz " boot\r\n"
s_tick:   .asciz " tick "
s_crlf:   .asciz "\r\n"

        .p2align 2
counter:  .long 0
elapsed:  .long 0
last:     .long 0

        .org NAME_OFFSET
guest_name:
        .asciz "guest"
        .org 510
        .byte 0x55, 0xaa
