set terminal pngcairo size 1000,560 font "sans,10" noenhanced
set output "latency_cdf_rate_10k.png"
set title "Latency CDF: pgbench -S -R 10000, c16 (fixed offered load) (all runs merged)"
set xlabel 'latency (ms, log scale)'
set ylabel 'transactions at or below (%)'
set logscale x
set yrange [0:100]
set grid
set key bottom right
plot "latency_cdf_rate_10k_direct.dat" using 1:($2*100) with lines lw 2 lc rgb "#4d4d4d" title "PostgreSQL direct (p50 0.124 ms, p99 0.293 ms)", \
     "latency_cdf_rate_10k_pgbouncer.dat" using 1:($2*100) with lines lw 2 lc rgb "#1f77b4" title "PgBouncer 1.18 (p50 0.166 ms, p99 0.563 ms)", \
     "latency_cdf_rate_10k_helios.dat" using 1:($2*100) with lines lw 2 lc rgb "#d62728" title "heliosproxy (p50 0.188 ms, p99 1.069 ms)", \
     "latency_cdf_rate_10k_helios-w1.dat" using 1:($2*100) with lines lw 2 lc rgb "#e377c2" title "heliosproxy, workers = 1 (fixed) (p50 0.186 ms, p99 1.055 ms)", \
     "latency_cdf_rate_10k_helios-w2.dat" using 1:($2*100) with lines lw 2 lc rgb "#9467bd" title "heliosproxy, workers = 2 (fixed) (p50 0.178 ms, p99 0.798 ms)"
