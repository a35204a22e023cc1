set terminal pngcairo size 1000,560 font "sans,10" noenhanced
set output "latency_cdf_select_simple.png"
set title "Latency CDF: pgbench -S, simple protocol, c16 (saturation) (all runs merged)"
set xlabel 'latency (ms, log scale)'
set ylabel 'transactions at or below (%)'
set logscale x
set yrange [0:100]
set grid
set key bottom right
plot "latency_cdf_select_simple_direct.dat" using 1:($2*100) with lines lw 2 lc rgb "#4d4d4d" title "PostgreSQL direct (p50 0.210 ms, p99 0.642 ms)", \
     "latency_cdf_select_simple_pgbouncer.dat" using 1:($2*100) with lines lw 2 lc rgb "#1f77b4" title "PgBouncer 1.18 (p50 0.333 ms, p99 0.993 ms)", \
     "latency_cdf_select_simple_helios.dat" using 1:($2*100) with lines lw 2 lc rgb "#d62728" title "heliosproxy (p50 0.440 ms, p99 0.795 ms)", \
     "latency_cdf_select_simple_helios-w1.dat" using 1:($2*100) with lines lw 2 lc rgb "#e377c2" title "heliosproxy, workers = 1 (fixed) (p50 0.413 ms, p99 0.863 ms)", \
     "latency_cdf_select_simple_helios-w2.dat" using 1:($2*100) with lines lw 2 lc rgb "#9467bd" title "heliosproxy, workers = 2 (fixed) (p50 0.385 ms, p99 0.943 ms)"
