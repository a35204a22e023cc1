set terminal pngcairo size 1000,560 font "sans,10" noenhanced
set output "noisy_neighbour_pgbouncer.png"
set title "Noisy neighbour through PgBouncer 1.18: latency over time (rep 1; B starts 3 s after A)"
set xlabel 'seconds since A started'
set ylabel 'latency per 0.5 s (ms, log scale)'
set logscale y
set grid
set key top right
plot "noisy_neighbour_pgbouncer_a.dat" using 1:4 with lines lw 2 lc rgb "#ff7f0e" title "A (200 clients) p99", \
     "noisy_neighbour_pgbouncer_a.dat" using 1:3 with lines lw 1 dt 2 lc rgb "#ff7f0e" title "A (200 clients) p50", \
     "noisy_neighbour_pgbouncer_b.dat" using 1:4 with lines lw 2 lc rgb "#2ca02c" title "B (10 clients) p99", \
     "noisy_neighbour_pgbouncer_b.dat" using 1:3 with lines lw 1 dt 2 lc rgb "#2ca02c" title "B (10 clients) p50"
