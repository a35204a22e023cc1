set terminal pngcairo size 1000,560 font "sans,10" noenhanced
set output "tps.png"
set title "Throughput per scenario (median, min–max)"
set ylabel "transactions per second"
set datafile missing '-'
set style fill solid
set boxwidth 0.160
set yrange [0:*]
set xrange [-0.6:1.6]
set xtics ("select_simple" 0, "rate_10k" 1)
set grid ytics
set key top right
plot "tps.dat" using ($0+-0.320):2:(0.144) with boxes fs solid 0.85 lc rgb "#4d4d4d" title "PostgreSQL direct", \
     "tps.dat" using ($0+-0.320):2:3:4 with yerrorbars lc rgb "black" pt 0 notitle, \
     "tps.dat" using ($0+-0.160):5:(0.144) with boxes fs solid 0.85 lc rgb "#1f77b4" title "PgBouncer 1.18", \
     "tps.dat" using ($0+-0.160):5:6:7 with yerrorbars lc rgb "black" pt 0 notitle, \
     "tps.dat" using ($0+0.000):8:(0.144) with boxes fs solid 0.85 lc rgb "#d62728" title "heliosproxy", \
     "tps.dat" using ($0+0.000):8:9:10 with yerrorbars lc rgb "black" pt 0 notitle, \
     "tps.dat" using ($0+0.160):11:(0.144) with boxes fs solid 0.85 lc rgb "#e377c2" title "heliosproxy, workers = 1 (fixed)", \
     "tps.dat" using ($0+0.160):11:12:13 with yerrorbars lc rgb "black" pt 0 notitle, \
     "tps.dat" using ($0+0.320):14:(0.144) with boxes fs solid 0.85 lc rgb "#9467bd" title "heliosproxy, workers = 2 (fixed)", \
     "tps.dat" using ($0+0.320):14:15:16 with yerrorbars lc rgb "black" pt 0 notitle
